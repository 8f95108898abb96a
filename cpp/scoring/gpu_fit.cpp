#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "tf/scoring.h"

namespace tf::scoring {
namespace {

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

// ceil(capacity * ppm / kPpmScale) for capacity >= 0 and 0 <= ppm <= kPpmScale. Splitting
// capacity at the scale keeps every product within capacity, so nothing can overflow.
std::int64_t ceil_ppm(std::int64_t capacity, std::int64_t ppm) {
  const std::int64_t whole = capacity / kPpmScale;
  const std::int64_t rest = capacity % kPpmScale;
  return whole * ppm + (rest * ppm + kPpmScale - 1) / kPpmScale;
}

// used + add > bound for non-negative operands, without forming the (possibly overflowing) sum.
bool exceeds(std::int64_t used, std::int64_t add, std::int64_t bound) {
  return add > bound - used;
}

// For non-negative operands; the result is min(a + b, INT64_MAX) whatever the order of a sum.
std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  return a > kInt64Max - b ? kInt64Max : a + b;
}

double used_share(std::int64_t used, std::int64_t capacity) {
  return capacity == 0 ? 100.0
                       : static_cast<double>(used) * 100.0 / static_cast<double>(capacity);
}

// clamp(floor(x + 0.5), 0, 100); a NaN (from inf - inf with extreme weights) scores 0.
std::int32_t round_clamp(double x) {
  const double y = x + 0.5;
  if (!(y >= 0.0)) {
    return 0;
  }
  if (y >= 100.0) {
    return 100;
  }
  return static_cast<std::int32_t>(y);  // truncation is floor for y >= 0, without a libm call
}

// The request's TFLOPS on one GPU: fixed, or a share of that GPU's capacity.
struct Tflops {
  std::int64_t request;
  std::int64_t limit;
};

Tflops tflops_on(const FitRequest& r, std::int64_t capacity) {
  return Tflops{
      r.percent_request_ppm >= 0 ? ceil_ppm(capacity, r.percent_request_ppm) : r.tflops_request,
      r.percent_limit_ppm >= 0 ? ceil_ppm(capacity, r.percent_limit_ppm) : r.tflops_limit};
}

Reason node_level_reason(const NodeColumns& nodes, std::size_t n, const FitRequest& r) {
  if (nodes.mask[n] == 0) {
    return Reason::node_filtered;
  }
  if (static_cast<std::int64_t>(nodes.workers[n]) + 1 > r.max_worker_per_node) {
    return Reason::too_many_workers;
  }
  return Reason::fits;
}

// Checks 2-9 for GPU i, whose node already passed checks 1 and 10.
Reason gpu_reason(const GpuColumns& g, std::size_t i, const FitRequest& r, const Tflops& t) {
  if (g.state[i] == static_cast<std::uint8_t>(GpuState::device_plugin)) {
    return Reason::device_plugin;
  }
  if (g.state[i] == static_cast<std::uint8_t>(GpuState::not_ready)) {
    return Reason::not_ready;
  }
  if (r.pool_id >= 0 && g.pool[i] != r.pool_id) {
    return Reason::pool_mismatch;
  }
  if (r.model_id >= 0 && g.model[i] != r.model_id) {
    return Reason::model_mismatch;
  }
  if (exceeds(g.tflops_requested[i], t.request, g.tflops_capacity[i])) {
    return Reason::insufficient_tflops;
  }
  if (exceeds(g.vram_requested[i], r.vram_request, g.vram_capacity[i])) {
    return Reason::insufficient_vram;
  }
  if (exceeds(g.tflops_limited[i], t.limit, g.tflops_virtual[i])) {
    return Reason::tflops_limit_over_virtual;
  }
  if (exceeds(g.vram_limited[i], r.vram_limit, g.vram_virtual[i])) {
    return Reason::vram_limit_over_virtual;
  }
  return Reason::fits;
}

// Score of a fitting GPU, from its shares once the request is placed on it.
std::int32_t gpu_score(const GpuColumns& g, std::size_t i, const FitRequest& r,
                       const Tflops& t) {
  const double vram_share = used_share(g.vram_requested[i] + r.vram_request, g.vram_capacity[i]);
  const double tflops_share =
      used_share(g.tflops_requested[i] + t.request, g.tflops_capacity[i]);
  if (static_cast<Placement>(r.mode) == Placement::compact_first) {
    return round_clamp(r.vram_weight * vram_share + r.tflops_weight * tflops_share);
  }
  return round_clamp(r.vram_weight * (100.0 - vram_share) +
                     r.tflops_weight * (100.0 - tflops_share));
}

// Checks 2-5 passed: the GPU is usable by this pod, full or not.
bool counts_toward_node_load(Reason reason) {
  switch (reason) {
    case Reason::fits:
    case Reason::insufficient_tflops:
    case Reason::insufficient_vram:
    case Reason::tflops_limit_over_virtual:
    case Reason::vram_limit_over_virtual:
      return true;
    default:
      return false;
  }
}

// NodeCompactGPULowLoad's node score: the node's used share once the request sits on the
// chosen GPUs, over the GPUs of the node the pod could use.
std::int32_t node_load_score(const GpuColumns& g, std::size_t begin, std::size_t end,
                             const std::vector<std::int32_t>& chosen, const FitRequest& r,
                             const std::uint8_t* reasons) {
  std::int64_t vram_used = 0;
  std::int64_t vram_capacity = 0;
  std::int64_t tflops_used = 0;
  std::int64_t tflops_capacity = 0;
  for (std::size_t i = begin; i < end; ++i) {
    if (counts_toward_node_load(static_cast<Reason>(reasons[i]))) {
      vram_used = saturating_add(vram_used, g.vram_requested[i]);
      vram_capacity = saturating_add(vram_capacity, g.vram_capacity[i]);
      tflops_used = saturating_add(tflops_used, g.tflops_requested[i]);
      tflops_capacity = saturating_add(tflops_capacity, g.tflops_capacity[i]);
    }
  }
  for (const std::int32_t i : chosen) {
    const auto gpu = static_cast<std::size_t>(i);
    vram_used = saturating_add(vram_used, r.vram_request);
    tflops_used = saturating_add(tflops_used, tflops_on(r, g.tflops_capacity[gpu]).request);
  }
  const double vram_share = used_share(vram_used, vram_capacity);
  const double tflops_share = used_share(tflops_used, tflops_capacity);
  return round_clamp(r.vram_weight * vram_share + r.tflops_weight * tflops_share);
}

// The rounded mean (2 * sum + k) / (2 * k) of the chosen GPUs' scores.
std::int32_t mean_gpu_score(const std::vector<std::int32_t>& chosen,
                            const std::int32_t* scores) {
  std::int64_t sum = 0;
  for (const std::int32_t i : chosen) {
    sum += scores[i];
  }
  const auto k = static_cast<std::int64_t>(chosen.size());
  return static_cast<std::int32_t>((2 * sum + k) / (2 * k));
}

// Picks the node's gpu_count best fitting GPUs among [begin, end) into `chosen` (score
// descending, then index), or leaves it shorter than gpu_count when too few fit.
void choose_gpus(std::size_t begin, std::size_t end, std::size_t gpu_count,
                 const FitOutput& out, std::vector<std::int32_t>& chosen) {
  chosen.clear();
  for (std::size_t i = begin; i < end; ++i) {
    if (out.gpu_reason[i] == static_cast<std::uint8_t>(Reason::fits)) {
      chosen.push_back(static_cast<std::int32_t>(i));
    }
  }
  if (chosen.size() < gpu_count) {
    return;
  }
  const std::int32_t* scores = out.gpu_score;
  const auto better = [scores](std::int32_t a, std::int32_t b) {
    return scores[a] != scores[b] ? scores[a] > scores[b] : a < b;
  };
  const auto last = chosen.begin() + static_cast<std::ptrdiff_t>(gpu_count);
  std::partial_sort(chosen.begin(), last, chosen.end(), better);
  chosen.erase(last, chosen.end());
}

}  // namespace

std::int32_t fit_gpus(const GpuColumns& gpus_in, const NodeColumns& nodes_in,
                      const FitRequest& request_in, const FitOutput& out_in) {
  // Local copies: the outputs are written through uint8_t pointers, which may alias anything
  // the caller can reach, so reading the columns through the caller's structs would reload
  // every pointer after every store.
  const GpuColumns gpus = gpus_in;
  const NodeColumns nodes = nodes_in;
  const FitRequest request = request_in;
  const FitOutput out = out_in;
  const auto gpu_count = static_cast<std::size_t>(request.gpu_count);
  std::fill_n(out.node_score, nodes.count, -1);
  std::fill_n(out.node_gpus, nodes.count * gpu_count, -1);
  for (std::size_t n = 0; n < nodes.count; ++n) {
    out.node_reason[n] = static_cast<std::uint8_t>(node_level_reason(nodes, n, request));
  }

  for (std::size_t i = 0; i < gpus.count; ++i) {
    const auto node = static_cast<std::size_t>(gpus.node[i]);
    const Tflops tflops = tflops_on(request, gpus.tflops_capacity[i]);
    Reason reason = static_cast<Reason>(out.node_reason[node]);
    if (reason == Reason::fits) {
      reason = gpu_reason(gpus, i, request, tflops);
    }
    out.gpu_reason[i] = static_cast<std::uint8_t>(reason);
    out.gpu_score[i] = reason == Reason::fits ? gpu_score(gpus, i, request, tflops) : -1;
  }

  const bool node_load =
      static_cast<Placement>(request.mode) == Placement::node_compact_gpu_low_load;
  std::int32_t best_node = -1;
  std::int32_t best_score = -1;
  std::vector<std::int32_t> chosen;
  std::size_t begin = 0;
  for (std::size_t n = 0; n < nodes.count; ++n) {
    std::size_t end = begin;
    while (end < gpus.count && static_cast<std::size_t>(gpus.node[end]) == n) {
      ++end;
    }
    std::uint8_t& reason = out.node_reason[n];
    if (reason == static_cast<std::uint8_t>(Reason::fits)) {
      choose_gpus(begin, end, gpu_count, out, chosen);
      if (begin == end) {
        reason = static_cast<std::uint8_t>(Reason::no_gpus);
      } else if (chosen.size() < gpu_count) {
        reason = static_cast<std::uint8_t>(Reason::not_enough_gpus);
      } else {
        const std::int32_t score = node_load
                                       ? node_load_score(gpus, begin, end, chosen, request,
                                                         out.gpu_reason)
                                       : mean_gpu_score(chosen, out.gpu_score);
        out.node_score[n] = score;
        std::copy(chosen.begin(), chosen.end(), out.node_gpus + n * gpu_count);
        if (score > best_score) {
          best_node = static_cast<std::int32_t>(n);
          best_score = score;
        }
      }
    }
    begin = end;
  }
  return best_node;
}

}  // namespace tf::scoring
