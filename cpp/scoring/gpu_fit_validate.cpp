#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

#include "input_checks.h"
#include "tf/scoring.h"

namespace tf::scoring {
namespace {

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();

std::optional<InputError> validate_request(const FitRequest& r) {
  struct Bound {
    const char* argument;
    std::int64_t value;
    std::int64_t low;
    std::int64_t high;
  };
  const Bound bounds[] = {
      {"tflops_request", r.tflops_request, 0, kInt64Max},
      {"tflops_limit", r.tflops_limit, 0, kInt64Max},
      {"vram_request", r.vram_request, 0, kInt64Max},
      {"vram_limit", r.vram_limit, 0, kInt64Max},
      {"percent_request_ppm", r.percent_request_ppm, -1, kPpmScale},
      {"percent_limit_ppm", r.percent_limit_ppm, -1, kPpmScale},
      {"gpu_count", r.gpu_count, 1, kMaxGpuCount},
      {"pool_id", r.pool_id, -1, kInt32Max},
      {"model_id", r.model_id, -1, kInt32Max},
      {"max_worker_per_node", r.max_worker_per_node, 1, kInt64Max},
      {"mode", r.mode, static_cast<std::int64_t>(Placement::compact_first),
       static_cast<std::int64_t>(Placement::node_compact_gpu_low_load)},
  };
  for (const Bound& b : bounds) {
    if (auto error = detail::check_range(b.argument, b.value, b.low, b.high)) {
      return error;
    }
  }
  if (auto error = detail::check_weight("vram_weight", r.vram_weight)) {
    return error;
  }
  return detail::check_weight("tflops_weight", r.tflops_weight);
}

std::optional<InputError> validate_gpu_identity(const GpuColumns& g, std::size_t node_count) {
  for (std::size_t i = 0; i < g.count; ++i) {
    const std::int64_t node = g.node[i];
    if (node < 0) {
      return detail::element_error("node", i, node, "must be >= 0");
    }
    if (static_cast<std::size_t>(node) >= node_count) {
      return detail::element_error("node", i, node, "is not an index into node_mask");
    }
    if (i > 0 && node < g.node[i - 1]) {
      return detail::element_error("node", i, node,
                                   "is below the previous GPU's node; the GPUs of a node must be "
                                   "contiguous, nodes in ascending order");
    }
    if (g.state[i] > static_cast<std::uint8_t>(GpuState::not_ready)) {
      return detail::element_error("state", i, g.state[i],
                                   "is not a GPU state (0 ready, 1 device plugin, 2 not ready)");
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<InputError> validate_amounts(const GpuColumns& g) {
  struct Column {
    const char* argument;
    const std::int64_t* values;
  };
  const Column columns[] = {
      {"tflops_capacity", g.tflops_capacity},   {"vram_capacity", g.vram_capacity},
      {"tflops_virtual", g.tflops_virtual},     {"vram_virtual", g.vram_virtual},
      {"tflops_requested", g.tflops_requested}, {"vram_requested", g.vram_requested},
      {"tflops_limited", g.tflops_limited},     {"vram_limited", g.vram_limited},
  };
  for (const Column& c : columns) {
    if (auto error = detail::check_non_negative(c.argument, c.values, g.count)) {
      return error;
    }
  }
  return std::nullopt;
}

std::optional<InputError> validate_fit(const GpuColumns& gpus, const NodeColumns& nodes,
                                       const FitRequest& request) {
  if (auto error = validate_refit(gpus, nodes, request)) {
    return error;
  }
  return validate_gpu_identity(gpus, nodes.count);
}

std::optional<InputError> validate_refit(const GpuColumns& gpus, const NodeColumns& nodes,
                                         const FitRequest& request) {
  if (auto error = validate_request(request)) {
    return error;
  }
  // Outputs index GPUs and nodes with int32.
  if (gpus.count > static_cast<std::size_t>(kInt32Max)) {
    return InputError{"node", "more GPUs than int32 indices can address"};
  }
  if (nodes.count > static_cast<std::size_t>(kInt32Max)) {
    return InputError{"node_mask", "more nodes than int32 indices can address"};
  }
  for (std::size_t n = 0; n < nodes.count; ++n) {
    if (nodes.workers[n] < 0) {
      return detail::element_error("node_workers", n, nodes.workers[n], "must be >= 0");
    }
  }
  return std::nullopt;
}

}  // namespace tf::scoring
