// Scheduler kernels over struct-of-arrays state: the per-GPU fit/score of one pod's request
// (GPUResourcesFit) and kube-scheduler's piecewise-linear RequestedToCapacityRatio shape.
//
// Pure C++17 and no Python: the bindings pass pointers into numpy buffers and call these with
// the GIL released. Every floating-point expression is written in the order the Python
// reference (tensorfusion.scheduler.gpu_fit_reference) uses, and this library is compiled with
// -ffp-contract=off, so native and reference scores agree bit for bit.
//
// Each kernel comes with a validate_* function. The kernels assume validated input (they index
// arrays by the node values, for one); callers must run the check first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace tf::scoring {

// Why a GPU (codes 0-10) or a node (0, 1, 10, 11, 12) was rejected. For a GPU the first
// failing check in the order node_filtered, too_many_workers, device_plugin, not_ready,
// pool_mismatch, model_mismatch, insufficient_tflops, insufficient_vram,
// tflops_limit_over_virtual, vram_limit_over_virtual gives the code.
enum class Reason : std::uint8_t {
  fits = 0,
  node_filtered = 1,
  device_plugin = 2,
  not_ready = 3,
  pool_mismatch = 4,
  model_mismatch = 5,
  insufficient_tflops = 6,
  insufficient_vram = 7,
  tflops_limit_over_virtual = 8,
  vram_limit_over_virtual = 9,
  too_many_workers = 10,
  not_enough_gpus = 11,
  no_gpus = 12,
};

enum class GpuState : std::uint8_t { ready = 0, device_plugin = 1, not_ready = 2 };

enum class Placement : std::int64_t {
  compact_first = 0,
  low_load_first = 1,
  node_compact_gpu_low_load = 2,
};

// The most GPUs one pod may ask for; the same bound as the gpu-count annotation.
inline constexpr std::int64_t kMaxGpuCount = 128;
// Percent-mode requests are in parts per million of the GPU's physical TFLOPS.
inline constexpr std::int64_t kPpmScale = 1'000'000;

// A bad argument: its name as the caller spelled it, and what is wrong with it.
struct InputError {
  std::string argument;
  std::string message;
};

// ---- GPU fit/score -------------------------------------------------------------------------

// One entry per GPU, `count` long each; GPUs of a node are contiguous (node is non-decreasing).
// Amounts are milli-TFLOPS and bytes. Non-owning.
struct GpuColumns {
  std::size_t count = 0;
  const std::int32_t* node = nullptr;
  const std::uint8_t* state = nullptr;  // a GpuState
  const std::int32_t* pool = nullptr;   // -1: none
  const std::int32_t* model = nullptr;  // -1: unknown
  const std::int64_t* tflops_capacity = nullptr;
  const std::int64_t* vram_capacity = nullptr;
  const std::int64_t* tflops_virtual = nullptr;  // bound for the sum of limits
  const std::int64_t* vram_virtual = nullptr;
  const std::int64_t* tflops_requested = nullptr;  // sums over the pods already placed
  const std::int64_t* vram_requested = nullptr;
  const std::int64_t* tflops_limited = nullptr;
  const std::int64_t* vram_limited = nullptr;
};

// One entry per node, `count` long each. Non-owning.
struct NodeColumns {
  std::size_t count = 0;
  const std::uint8_t* mask = nullptr;      // 0: rejected by an earlier filter
  const std::int32_t* workers = nullptr;  // pods with GPUs already on the node
};

struct FitRequest {
  std::int64_t tflops_request = 0;
  std::int64_t tflops_limit = 0;
  std::int64_t vram_request = 0;
  std::int64_t vram_limit = 0;
  // -1: unused; otherwise the TFLOPS request (limit) on a GPU is this share of its capacity.
  std::int64_t percent_request_ppm = -1;
  std::int64_t percent_limit_ppm = -1;
  std::int64_t gpu_count = 1;
  std::int64_t pool_id = -1;   // -1: any pool
  std::int64_t model_id = -1;  // -1: any model
  std::int64_t max_worker_per_node = 1;
  std::int64_t mode = 0;  // a Placement code; kept raw so that validation can report it
  double vram_weight = 0.0;
  double tflops_weight = 0.0;
};

// Caller-owned outputs: gpu_* hold GpuColumns::count entries, node_* NodeColumns::count, and
// node_gpus NodeColumns::count rows of gpu_count GPU indices (row-major).
struct FitOutput {
  std::uint8_t* gpu_reason = nullptr;  // a Reason
  std::int32_t* gpu_score = nullptr;   // 0-100, -1 when the GPU does not fit
  std::uint8_t* node_reason = nullptr;
  std::int32_t* node_score = nullptr;  // 0-100, -1 when the node is infeasible
  std::int32_t* node_gpus = nullptr;   // chosen GPUs by score descending, then index; -1 rows
};

// Checks the request values, node values (in range, non-decreasing), states and worker
// counts, and that both counts fit the int32 indices of the outputs. Array lengths are the
// caller's business (the columns carry one count). The amounts are checked by fit_gpus in
// its own pass over them (a separate pass would read every column twice).
std::optional<InputError> validate_fit(const GpuColumns& gpus, const NodeColumns& nodes,
                                       const FitRequest& request);

// validate_fit without the pass over the GPUs' node and state columns, for refit_nodes: the
// layout was checked by the fit_gpus call whose outputs are being refitted, and refit_nodes
// stays within bounds whatever the layout (it only reads GPUs of the listed, checked nodes).
std::optional<InputError> validate_refit(const GpuColumns& gpus, const NodeColumns& nodes,
                                         const FitRequest& request);

// Names the first negative amount (capacity, virtual capacity or usage), if any.
std::optional<InputError> validate_amounts(const GpuColumns& gpus);

inline constexpr std::int32_t kNegativeAmount = -2;

// Filters and scores every GPU for the request, chooses gpu_count GPUs per node, scores the
// nodes, and returns the best node (highest score, ties to the lower index), -1 if none is
// feasible, or kNegativeAmount when an amount column holds a negative value (the outputs are
// then meaningless; validate_amounts says where). Requires validate_fit to have passed.
std::int32_t fit_gpus(const GpuColumns& gpus, const NodeColumns& nodes, const FitRequest& request,
                      const FitOutput& out);

// Recomputes, in outputs that hold a fit_gpus result for the same request, only the listed
// nodes (those whose GPUs, worker count or mask changed since), then returns the best node
// over all nodes, as fit_gpus would: the outputs end exactly as a full fit_gpus would leave
// them. Every entry of `changed` must be < nodes.count. kNegativeAmount as for fit_gpus.
std::int32_t refit_nodes(const GpuColumns& gpus, const NodeColumns& nodes,
                         const FitRequest& request, const FitOutput& out,
                         const std::int32_t* changed, std::size_t changed_count);

// ---- Expected fragmentation (FragmentationAware) -------------------------------------------

// What one GPU of a request takes, one entry per distinct shape, `count` long each (as in
// FitRequest; model_id -1 for any model). Non-owning.
struct MixShapes {
  std::size_t count = 0;
  const std::int64_t* tflops_request = nullptr;
  const std::int64_t* tflops_limit = nullptr;
  const std::int64_t* percent_request_ppm = nullptr;
  const std::int64_t* percent_limit_ppm = nullptr;
  const std::int64_t* vram_request = nullptr;
  const std::int64_t* vram_limit = nullptr;
  const std::int32_t* model_id = nullptr;
};

// The classes of request the measure weighs, `count` long each: a shape (index into
// MixShapes) on gpu_count GPUs of one node, with cpu millicores and memory bytes beside, and
// its weight (recent arrivals). Non-owning.
struct MixClasses {
  std::size_t count = 0;
  const std::int32_t* shape = nullptr;
  const std::int32_t* gpu_count = nullptr;
  const std::int64_t* cpu = nullptr;
  const std::int64_t* memory = nullptr;
  const std::int64_t* weight = nullptr;
};

struct Mix {
  MixShapes shapes;
  MixClasses classes;
};

inline constexpr std::int64_t kMaxClassWeight = 1'000'000;
// The score of a placement that leaves the expected fragmentation as it was.
inline constexpr std::int32_t kNeutralScore = 50;

// Where the pod may go and what it takes beside its GPUs. Non-owning.
struct FragmentationQuery {
  const std::uint8_t* gpu_fits = nullptr;    // per GPU; nonzero: the pod's request fits it
  const std::int32_t* candidates = nullptr;  // node indices, strictly ascending
  std::size_t candidate_count = 0;
  std::size_t node_count = 0;
  const std::int64_t* node_cpu_free = nullptr;  // node_count entries each
  const std::int64_t* node_memory_free = nullptr;
  std::int64_t pod_cpu = 0;
  std::int64_t pod_memory = 0;
  std::int64_t half_score_ppm = 0;  // the change, per unit of class weight, that scores 25 or 75
  std::int64_t tie_divisor = 1;     // weighs what the chosen GPUs have left, as a tie-break
};

// Checks what tensorfusion.scheduler.fragmentation_reference checks: the GPUs' layout
// against node_count, their states and amounts, the pod's request (only the fields the
// measure reads; gpu_count may be 0 for a pod without GPUs), the mix, the candidates, and
// that every candidate has gpu_count ready GPUs of the request's pool where gpu_fits is set.
// Array lengths are the caller's business.
std::optional<InputError> validate_fragmentation(const GpuColumns& gpus, const FitRequest& pod,
                                                 const Mix& mix,
                                                 const FragmentationQuery& query);

// Per candidate, in order: score[i] (0-100, higher adds less expected fragmentation) and row
// i of `chosen` (candidate_count rows of pod.gpu_count GPU indices, the GPUs that add the
// least, then by index). Requires validate_fragmentation to have passed.
void fragmentation_scores(const GpuColumns& gpus, const FitRequest& pod, const Mix& mix,
                          const FragmentationQuery& query, std::int32_t* score,
                          std::int32_t* chosen) noexcept;

// ---- RequestedToCapacityRatio shape --------------------------------------------------------

// Per-resource usage, `count` long each. Non-owning.
struct UsageColumns {
  std::size_t count = 0;
  const std::int64_t* requested = nullptr;
  const std::int64_t* capacity = nullptr;
};

// The points of the piecewise-linear function, `count` long each. Non-owning.
struct Shape {
  std::size_t count = 0;
  const std::int64_t* utilization = nullptr;  // percent, strictly increasing
  const std::int64_t* score = nullptr;        // kube's 0-10 shape scores times 10
};

inline constexpr std::int64_t kMaxUtilization = 100;
inline constexpr std::int64_t kMaxShapeScore = 100;

// Checks requested and capacity >= 0, at least one point, utilization strictly increasing
// within [0, kMaxUtilization] and scores within [0, kMaxShapeScore].
std::optional<InputError> validate_broken_linear(const UsageColumns& usage, const Shape& shape);

// out[i] = shape(p) with p = requested * 100 / capacity (truncated; 100 when capacity is 0 or
// requested exceeds it), interpolated between points with Go's truncating division, as
// kube-scheduler's RequestedToCapacityRatio does. Requires validate_broken_linear to have
// passed; out holds usage.count entries.
void broken_linear(const UsageColumns& usage, const Shape& shape, std::int64_t* out) noexcept;

}  // namespace tf::scoring
