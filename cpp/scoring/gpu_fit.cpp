#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "gpu_search.h"
#include "share_math.h"
#include "tf/scoring.h"

namespace tf::scoring {
namespace {

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
// A byte count times kFreeLevels can pass 64 bits.
using detail::Wide;
using detail::ceil_ppm;

// used + add > bound, exact for any operands (a negative amount is only detected after the
// pass, so the arithmetic must stay defined for it).
bool exceeds(std::int64_t used, std::int64_t add, std::int64_t bound) {
  std::int64_t sum = 0;
  if (__builtin_add_overflow(used, add, &sum)) {
    return add > 0;
  }
  return sum > bound;
}

// min(a + b, INT64_MAX) for non-negative operands, whatever the order of a sum; defined for
// any operands.
std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  std::int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) {
    return b > 0 ? kInt64Max : std::numeric_limits<std::int64_t>::min();
  }
  return sum;
}

// The OR of every amount of GPU i: negative exactly when one of them is.
std::int64_t amount_signs(const GpuColumns& g, std::size_t i) {
  return g.tflops_capacity[i] | g.vram_capacity[i] | g.tflops_virtual[i] | g.vram_virtual[i] |
         g.tflops_requested[i] | g.vram_requested[i] | g.tflops_limited[i] | g.vram_limited[i];
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

// Checks 2-9 for GPU i, whose node already passed checks 1 and 10. Every check is evaluated
// and the first failing one picked from a bit mask: with a cluster half full the outcomes are
// random, and a chain of unpredictable branches would cost more than the checks themselves.
Reason gpu_reason(const GpuColumns& g, std::size_t i, const FitRequest& r, const Tflops& t) {
  static constexpr Reason kInOrder[] = {
      Reason::device_plugin,          Reason::not_ready,
      Reason::pool_mismatch,          Reason::model_mismatch,
      Reason::insufficient_tflops,    Reason::insufficient_vram,
      Reason::tflops_limit_over_virtual, Reason::vram_limit_over_virtual,
  };
  const unsigned failed =
      static_cast<unsigned>(g.state[i] == static_cast<std::uint8_t>(GpuState::device_plugin)) |
      static_cast<unsigned>(g.state[i] == static_cast<std::uint8_t>(GpuState::not_ready)) << 1U |
      static_cast<unsigned>(r.pool_id >= 0 && g.pool[i] != r.pool_id) << 2U |
      static_cast<unsigned>(r.model_id >= 0 && g.model[i] != r.model_id) << 3U |
      static_cast<unsigned>(exceeds(g.tflops_requested[i], t.request, g.tflops_capacity[i]))
          << 4U |
      static_cast<unsigned>(exceeds(g.vram_requested[i], r.vram_request, g.vram_capacity[i]))
          << 5U |
      static_cast<unsigned>(exceeds(g.tflops_limited[i], t.limit, g.tflops_virtual[i])) << 6U |
      static_cast<unsigned>(exceeds(g.vram_limited[i], r.vram_limit, g.vram_virtual[i])) << 7U;
  return failed == 0 ? Reason::fits : kInOrder[__builtin_ctz(failed)];
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

// What one scan of a range of nodes found.
struct Partial {
  std::int32_t best_node = -1;
  std::int32_t best_score = -1;
  std::int64_t signs = 0;
};

// Filters and scores the nodes [node_begin, node_end), whose GPUs start at gpu_begin.
Partial scan_nodes(const GpuColumns& gpus, const NodeColumns& nodes, const FitRequest& request,
                   const FitOutput& out, std::size_t node_begin, std::size_t node_end,
                   std::size_t gpu_begin) {
  const auto gpu_count = static_cast<std::size_t>(request.gpu_count);
  const bool node_load =
      static_cast<Placement>(request.mode) == Placement::node_compact_gpu_low_load;
  Partial found;
  std::vector<std::int32_t> chosen;
  std::size_t begin = gpu_begin;
  for (std::size_t n = node_begin; n < node_end; ++n) {
    std::size_t end = begin;
    while (end < gpus.count && static_cast<std::size_t>(gpus.node[end]) == n) {
      found.signs |= amount_signs(gpus, end);
      ++end;
    }
    Reason reason = node_level_reason(nodes, n, request);
    if (reason != Reason::fits) {
      std::fill(out.gpu_reason + begin, out.gpu_reason + end, static_cast<std::uint8_t>(reason));
      std::fill(out.gpu_score + begin, out.gpu_score + end, -1);
    } else {
      // The single best GPU is tracked on the fly; several are picked after the scan.
      std::int32_t top = -1;
      std::size_t fitting = 0;
      for (std::size_t i = begin; i < end; ++i) {
        const Tflops tflops = tflops_on(request, gpus.tflops_capacity[i]);
        const Reason why = gpu_reason(gpus, i, request, tflops);
        const bool fits = why == Reason::fits;
        const std::int32_t score = fits ? gpu_score(gpus, i, request, tflops) : -1;
        out.gpu_reason[i] = static_cast<std::uint8_t>(why);
        out.gpu_score[i] = score;
        fitting += fits ? 1U : 0U;
        if (fits && (top < 0 || score > out.gpu_score[top])) {
          top = static_cast<std::int32_t>(i);
        }
      }
      if (begin == end) {
        reason = Reason::no_gpus;
      } else if (fitting < gpu_count) {
        reason = Reason::not_enough_gpus;
      } else {
        if (gpu_count == 1) {
          chosen.assign(1, top);
        } else {
          choose_gpus(begin, end, gpu_count, out, chosen);
        }
        const std::int32_t score = node_load
                                       ? node_load_score(gpus, begin, end, chosen, request,
                                                         out.gpu_reason)
                                       : mean_gpu_score(chosen, out.gpu_score);
        out.node_score[n] = score;
        std::copy(chosen.begin(), chosen.end(), out.node_gpus + n * gpu_count);
        if (score > found.best_score) {
          found.best_node = static_cast<std::int32_t>(n);
          found.best_score = score;
        }
      }
    }
    out.node_reason[n] = static_cast<std::uint8_t>(reason);
    begin = end;
  }
  return found;
}

// Upper bounds on the node score any feasible placement of one request can reach, from the
// node summaries; -1 when no GPU of the node can fit. A GPU's score is at most its weighted
// used share among the GPUs with enough free VRAM, plus what the request adds to the
// smallest capacity (CompactFirst; the mean of several GPUs is at most the best); at most
// what it gives when empty (LowLoadFirst). NodeCompactGPULowLoad scores the node's sums:
// when every GPU counts, the sums plus k times the request (exact for TFLOPS requests; a
// percent request adds at most its share of the largest GPU, plus one, per chosen GPU),
// otherwise at most the largest share (a ratio of sums is at most the largest ratio) plus
// what the request adds. The slack covers the rounding of the exact scores.
class ScoreBounds {
 public:
  ScoreBounds(const double* summary, std::size_t count, const FitRequest& r)
      : s_(summary), count_(count), r_(r), mode_(static_cast<Placement>(r.mode)) {}

  std::int32_t at(std::size_t n) {
    const double vram_capacity = column(kMinVramCapacity, n);
    const double tflops_capacity = column(kMinTflopsCapacity, n);
    if (!(vram_capacity > 0.0 && tflops_capacity > 0.0)) {
      return 100;
    }
    double x = 0.0;
    if (mode_ == Placement::low_load_first) {
      x = column(kMaxFreeWeighted, n);
    } else if (mode_ == Placement::compact_first) {
      refresh(vram_capacity, tflops_capacity, column(kMaxVramCapacity, n));
      const double best = column(kLevelWeighted + level_, n);
      if (best == -std::numeric_limits<double>::infinity()) {
        return -1;
      }
      x = best + added_;
    } else if (whole_node_counts(n)) {
      x = node_load(n);
    } else {
      refresh(vram_capacity, tflops_capacity, column(kMaxVramCapacity, n));
      x = r_.vram_weight * column(kMaxVramShare, n) +
          r_.tflops_weight * column(kMaxTflopsShare, n) + added_;
    }
    const double y = x + 0.5 + 1e-6;
    if (!(y < 100.0)) {
      return 100;  // NaN too
    }
    return y < 0.0 ? 0 : static_cast<std::int32_t>(y);
  }

 private:
  double column(std::size_t c, std::size_t n) const { return s_[c * count_ + n]; }

  double ppm_share() const {
    return static_cast<double>(r_.percent_request_ppm) * 100.0 / kPpmScale;
  }

  // What the request adds to the weighted shares of the smallest GPUs, and the free-VRAM
  // level a GPU needs to fit it: min(kFreeLevels, floor(kFreeLevels * request / largest)).
  // Kept for the capacities of the last node (nodes mostly share them): divisions are slow.
  void refresh(double vram_capacity, double tflops_capacity, double largest) {
    if (vram_capacity == vram_capacity_ && tflops_capacity == tflops_capacity_ &&
        largest == largest_) {
      return;
    }
    vram_capacity_ = vram_capacity;
    tflops_capacity_ = tflops_capacity;
    largest_ = largest;
    const double tflops_added =
        r_.percent_request_ppm >= 0
            ? ppm_share() + 100.0 / tflops_capacity
            : static_cast<double>(r_.tflops_request) * 100.0 / tflops_capacity;
    added_ = r_.vram_weight * (static_cast<double>(r_.vram_request) * 100.0 / vram_capacity) +
             r_.tflops_weight * tflops_added;
    const auto capacity = static_cast<Wide>(largest);
    const Wide scaled = static_cast<Wide>(r_.vram_request) * kFreeLevels;
    level_ = static_cast<std::size_t>(std::min<Wide>(kFreeLevels, scaled / capacity));
  }

  // Every GPU of node n counts toward its load for this request.
  bool whole_node_counts(std::size_t n) const {
    const double pool = column(kUniformPool, n);
    const double model = column(kUniformModel, n);
    return pool != -2.0 && (r_.pool_id < 0 || pool == static_cast<double>(r_.pool_id)) &&
           (r_.model_id < 0 || model == static_cast<double>(r_.model_id));
  }

  double node_load(std::size_t n) const {
    const double k = static_cast<double>(r_.gpu_count);
    const double tflops = column(kTflopsCapacity, n);
    // A percent request takes ceil(capacity * ppm / kPpmScale) of each chosen GPU: at most
    // that of the largest, plus one.
    const double per_gpu =
        r_.percent_request_ppm >= 0
            ? column(kMaxTflopsCapacity, n) * ppm_share() / 100.0 + 1.0
            : static_cast<double>(r_.tflops_request);
    const double tflops_used = column(kTflopsUsed, n) + k * per_gpu;
    const double vram_used = column(kVramUsed, n) + k * static_cast<double>(r_.vram_request);
    return r_.vram_weight * vram_used * 100.0 / column(kVramCapacity, n) +
           r_.tflops_weight * tflops_used * 100.0 / tflops;
  }

  const double* s_;
  std::size_t count_;
  const FitRequest& r_;
  Placement mode_;
  double vram_capacity_ = -1.0;
  double tflops_capacity_ = -1.0;
  double largest_ = -1.0;
  double added_ = 0.0;
  std::size_t level_ = 0;
};

// A node still to visit: its bound on gpu_weight * score + bonus.
struct Pending {
  std::int64_t bound;
  std::int32_t node;
};

// Heap order: the highest bound first, then the lowest index (the order ties are won in).
bool visited_later(const Pending& a, const Pending& b) {
  return a.bound != b.bound ? a.bound < b.bound : a.node > b.node;
}

// Below this many GPUs a second thread costs more to start than it saves.
constexpr std::size_t kParallelGpus = 16384;

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

  // A large cluster is scanned in two halves at once: the scan streams every column once,
  // and one core's memory bandwidth is what bounds it.
  Partial first;
  Partial second;
  const std::size_t middle = nodes.count / 2;
  if (gpus.count >= kParallelGpus && std::thread::hardware_concurrency() > 1) {
    const auto split = static_cast<std::size_t>(
        std::lower_bound(gpus.node, gpus.node + gpus.count, static_cast<std::int32_t>(middle)) -
        gpus.node);
    std::exception_ptr failure;
    std::thread helper([&] {
      try {
        second = scan_nodes(gpus, nodes, request, out, middle, nodes.count, split);
      } catch (...) {
        failure = std::current_exception();
      }
    });
    first = scan_nodes(gpus, nodes, request, out, 0, middle, 0);
    helper.join();
    if (failure) {
      std::rethrow_exception(failure);
    }
  } else {
    first = scan_nodes(gpus, nodes, request, out, 0, nodes.count, 0);
  }
  if ((first.signs | second.signs) < 0) {
    return kNegativeAmount;
  }
  // Ties go to the lower node index, which is in the first half.
  return second.best_score > first.best_score ? second.best_node : first.best_node;
}

std::int32_t refit_nodes(const GpuColumns& gpus_in, const NodeColumns& nodes_in,
                         const FitRequest& request_in, const FitOutput& out_in,
                         const std::int32_t* changed, std::size_t changed_count) {
  const GpuColumns gpus = gpus_in;
  const NodeColumns nodes = nodes_in;
  const FitRequest request = request_in;
  const FitOutput out = out_in;
  const auto gpu_count = static_cast<std::size_t>(request.gpu_count);
  std::int64_t signs = 0;
  for (std::size_t k = 0; k < changed_count; ++k) {
    const auto n = static_cast<std::size_t>(changed[k]);
    out.node_score[n] = -1;
    std::fill_n(out.node_gpus + n * gpu_count, gpu_count, -1);
    const auto first = static_cast<std::size_t>(
        std::lower_bound(gpus.node, gpus.node + gpus.count, changed[k]) - gpus.node);
    signs |= scan_nodes(gpus, nodes, request, out, n, n + 1, first).signs;
  }
  if (signs < 0) {
    return kNegativeAmount;
  }
  // The best node over all of them: the highest score, ties to the lower index.
  std::int32_t best_node = -1;
  std::int32_t best_score = -1;
  for (std::size_t n = 0; n < nodes.count; ++n) {
    if (out.node_score[n] > best_score) {
      best_score = out.node_score[n];
      best_node = static_cast<std::int32_t>(n);
    }
  }
  return best_node;
}

bool summarize_nodes(const GpuColumns& gpus, const std::int64_t* node_start,
                     std::size_t node_count, const std::int32_t* changed,
                     std::size_t changed_count, double vram_weight, double tflops_weight,
                     double* summary) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::int64_t signs = 0;
  for (std::size_t k = 0; k < changed_count; ++k) {
    const auto n = static_cast<std::size_t>(changed[k]);
    double max_vram_share = -kInf;
    double max_tflops_share = -kInf;
    double min_vram_capacity = kInf;
    double min_tflops_capacity = kInf;
    double max_vram_capacity = 0.0;
    double max_tflops_capacity = 0.0;
    double sums[4] = {0.0, 0.0, 0.0, 0.0};  // VRAM used, capacity; TFLOPS used, capacity
    double max_free = -kInf;
    double levels[kFreeLevels + 1];
    std::fill_n(levels, kFreeLevels + 1, -kInf);
    const auto begin = static_cast<std::size_t>(node_start[n]);
    const auto end = static_cast<std::size_t>(node_start[n + 1]);
    bool uniform = true;
    for (std::size_t i = begin; i < end; ++i) {
      signs |= amount_signs(gpus, i);
      uniform = uniform && gpus.state[i] == static_cast<std::uint8_t>(GpuState::ready) &&
                gpus.pool[i] == gpus.pool[begin] && gpus.model[i] == gpus.model[begin];
      const double vram = used_share(gpus.vram_requested[i], gpus.vram_capacity[i]);
      const double tflops = used_share(gpus.tflops_requested[i], gpus.tflops_capacity[i]);
      max_vram_share = std::max(max_vram_share, vram);
      max_tflops_share = std::max(max_tflops_share, tflops);
      const auto vram_capacity = static_cast<double>(gpus.vram_capacity[i]);
      min_vram_capacity = std::min(min_vram_capacity, vram_capacity);
      max_vram_capacity = std::max(max_vram_capacity, vram_capacity);
      const auto tflops_capacity = static_cast<double>(gpus.tflops_capacity[i]);
      min_tflops_capacity = std::min(min_tflops_capacity, tflops_capacity);
      max_tflops_capacity = std::max(max_tflops_capacity, tflops_capacity);
      sums[0] += static_cast<double>(gpus.vram_requested[i]);
      sums[1] += vram_capacity;
      sums[2] += static_cast<double>(gpus.tflops_requested[i]);
      sums[3] += tflops_capacity;
      max_free =
          std::max(max_free, vram_weight * (100.0 - vram) + tflops_weight * (100.0 - tflops));
      const std::int64_t free = gpus.vram_capacity[i] - gpus.vram_requested[i];
      if (free >= 0 && gpus.vram_capacity[i] > 0) {
        const auto level = static_cast<std::size_t>(static_cast<Wide>(free) * kFreeLevels /
                                                    gpus.vram_capacity[i]);
        levels[level] = std::max(levels[level], vram_weight * vram + tflops_weight * tflops);
      }
    }
    for (std::size_t level = kFreeLevels; level-- > 0;) {
      levels[level] = std::max(levels[level], levels[level + 1]);
    }
    const auto put = [summary, node_count, n](std::size_t column, double value) {
      summary[column * node_count + n] = value;
    };
    put(kMaxVramShare, max_vram_share);
    put(kMaxTflopsShare, max_tflops_share);
    put(kMinVramCapacity, min_vram_capacity);
    put(kMinTflopsCapacity, min_tflops_capacity);
    put(kMaxVramCapacity, max_vram_capacity);
    put(kMaxTflopsCapacity, max_tflops_capacity);
    put(kVramUsed, sums[0]);
    put(kVramCapacity, sums[1]);
    put(kTflopsUsed, sums[2]);
    put(kTflopsCapacity, sums[3]);
    put(kUniformPool, uniform && begin < end ? gpus.pool[begin] : -2.0);
    put(kUniformModel, uniform && begin < end ? gpus.model[begin] : -2.0);
    put(kMaxFreeWeighted, max_free);
    for (std::size_t level = 0; level <= kFreeLevels; ++level) {
      put(kLevelWeighted + level, levels[level]);
    }
  }
  return signs >= 0;
}

std::int32_t search_best_node(const GpuColumns& gpus_in, const NodeColumns& nodes_in,
                              const FitRequest& request_in, const std::int64_t* node_start,
                              const double* summary, const std::int64_t* bonus,
                              std::int64_t gpu_weight, std::int32_t* chosen) {
  const GpuColumns gpus = gpus_in;
  const NodeColumns nodes = nodes_in;
  const FitRequest request = request_in;
  const auto gpu_count = static_cast<std::size_t>(request.gpu_count);
  std::vector<Pending> pending;
  pending.reserve(nodes.count);
  ScoreBounds bounds(summary, nodes.count, request);
  for (std::size_t n = 0; n < nodes.count; ++n) {
    if (node_start[n] == node_start[n + 1] ||
        node_level_reason(nodes, n, request) != Reason::fits) {
      continue;  // no GPUs, or rejected whatever its GPUs hold
    }
    const std::int32_t bound = bounds.at(n);
    if (bound < 0) {
      continue;  // no GPU has the VRAM free
    }
    pending.push_back(Pending{gpu_weight * static_cast<std::int64_t>(bound) + bonus[n],
                              static_cast<std::int32_t>(n)});
  }
  std::make_heap(pending.begin(), pending.end(), visited_later);
  // Scratch outputs for the visited nodes only: left uninitialised, never read elsewhere.
  const std::unique_ptr<std::uint8_t[]> gpu_reason(new std::uint8_t[gpus.count]);
  const std::unique_ptr<std::int32_t[]> gpu_score(new std::int32_t[gpus.count]);
  const std::unique_ptr<std::uint8_t[]> node_reason(new std::uint8_t[nodes.count]);
  const std::unique_ptr<std::int32_t[]> node_score(new std::int32_t[nodes.count]);
  const std::unique_ptr<std::int32_t[]> node_gpus(new std::int32_t[nodes.count * gpu_count]);
  const FitOutput out{gpu_reason.get(), gpu_score.get(), node_reason.get(), node_score.get(),
                      node_gpus.get()};
  std::int32_t best_node = -1;
  std::int64_t best_total = 0;
  while (!pending.empty()) {
    const Pending next = pending.front();
    if (best_node >= 0 &&
        (next.bound < best_total || (next.bound == best_total && next.node > best_node))) {
      break;  // no node left can beat the best found
    }
    std::pop_heap(pending.begin(), pending.end(), visited_later);
    pending.pop_back();
    const auto n = static_cast<std::size_t>(next.node);
    const auto first = static_cast<std::size_t>(node_start[n]);
    if (scan_nodes(gpus, nodes, request, out, n, n + 1, first).signs < 0) {
      return kNegativeAmount;
    }
    if (out.node_reason[n] != static_cast<std::uint8_t>(Reason::fits)) {
      continue;
    }
    const std::int64_t total = gpu_weight * out.node_score[n] + bonus[n];
    if (best_node < 0 || total > best_total || (total == best_total && next.node < best_node)) {
      best_node = next.node;
      best_total = total;
      std::copy_n(out.node_gpus + n * gpu_count, gpu_count, chosen);
    }
  }
  return best_node;
}

}  // namespace tf::scoring
