// GPUResourcesFit's best-node search: the node a full fit_gpus scan would pick for one
// request (combined with the other score plugins' fixed per-node totals), found by visiting
// nodes in order of an upper bound on what they can score and stopping once no unvisited
// node can beat the best found. Per-node bounds come from a summary of each node's GPUs that
// the caller keeps up to date for the nodes that changed.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tf/scoring.h"

namespace tf::scoring {

// Levels of free VRAM: a GPU is at level floor(kFreeLevels * free / capacity) (-1 when
// over-allocated), and a GPU that fits a request has a level at least
// floor(kFreeLevels * request / the node's largest capacity).
inline constexpr std::size_t kFreeLevels = 128;

// Columns of the per-node summary (column-major: column c of node n is
// summary[c * nodes + n]), over the node's GPUs. Shares are percent as the kernel computes
// them; "weighted" means vram_weight * VRAM + tflops_weight * TFLOPS, with the weights the
// summary was made for.
enum NodeSummaryColumn : std::size_t {
  kMaxVramShare,       // highest used share
  kMaxTflopsShare,
  kMinVramCapacity,    // smallest capacity
  kMinTflopsCapacity,
  kMaxVramCapacity,    // largest VRAM capacity
  kMaxTflopsCapacity,  // largest TFLOPS capacity
  kVramUsed,           // sums, for NodeCompactGPULowLoad
  kVramCapacity,
  kTflopsUsed,
  kTflopsCapacity,
  kUniformPool,        // the pool of every GPU when all are ready and share one, else -2
  kUniformModel,       // likewise for the model
  kMaxFreeWeighted,    // highest weighted free share (100 - used share)
  kLevelWeighted,      // kFreeLevels + 1 columns: the highest weighted used share among the
                       // GPUs at that level of free VRAM or above (-inf when none)
  kNodeSummaryWidth = kLevelWeighted + kFreeLevels + 1,
};

// Recomputes the summary of the `changed` nodes, whose GPUs are
// [node_start[n], node_start[n + 1]), for the given weights. Returns false when one of their
// amounts is negative.
bool summarize_nodes(const GpuColumns& gpus, const std::int64_t* node_start,
                     std::size_t node_count, const std::int32_t* changed,
                     std::size_t changed_count, double vram_weight, double tflops_weight,
                     double* summary);

// Among the nodes fit_gpus would find feasible, the one with the highest
// gpu_weight * node_score + bonus[n] (ties to the lower index), its chosen GPUs written to
// `chosen` (gpu_count entries); -1 when none is feasible, kNegativeAmount when a visited node
// holds a negative amount. Requires validate_refit to have passed, and node_start and
// summary to describe the current GPUs, summarised with the request's weights.
std::int32_t search_best_node(const GpuColumns& gpus, const NodeColumns& nodes,
                              const FitRequest& request, const std::int64_t* node_start,
                              const double* summary, const std::int64_t* bonus,
                              std::int64_t gpu_weight, std::int32_t* chosen);

}  // namespace tf::scoring
