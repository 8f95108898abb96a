// FragmentationAware's kernel. A node's expected fragmentation is the sum over the mix's
// classes of weight x the free GPU share the class cannot use there; placing the pod changes
// only the GPUs it lands on, so each placement is measured by updating the per-shape sums of
// those GPUs rather than by recomputing the node. The rules, in plain Python, are
// tensorfusion.scheduler.fragmentation_reference; everything is integer arithmetic, so the
// two agree exactly.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "input_checks.h"
#include "share_math.h"
#include "tf/scoring.h"

namespace tf::scoring {
namespace {

// Weighted sums of shares, and sums of requests placed past 64 bits, need more than int64
// (the reference's integers never overflow).
using detail::Wide;

// ---- Validation ------------------------------------------------------------------------------

// The first entry outside [low, high], named as element_error does.
template <typename T>
std::optional<InputError> first_outside(std::string_view argument, const T* values,
                                        std::size_t count, std::int64_t low, std::int64_t high,
                                        std::string_view above = {}) {
  for (std::size_t i = 0; i < count; ++i) {
    const std::int64_t value = values[i];
    if (value < low) {
      return detail::element_error(argument, i, value, "must be >= " + std::to_string(low));
    }
    if (value > high) {
      const std::string problem =
          above.empty() ? "must be <= " + std::to_string(high) : std::string(above);
      return detail::element_error(argument, i, value, problem);
    }
  }
  return std::nullopt;
}

std::optional<InputError> validate_mix(const Mix& mix) {
  constexpr std::int64_t kAny = std::numeric_limits<std::int64_t>::max();
  const MixShapes& s = mix.shapes;
  const MixClasses& c = mix.classes;
  const std::size_t n = s.count;
  const auto shape_count = static_cast<std::int64_t>(n);
  std::optional<InputError> error;
  // Evaluated in order, stopping at the first error.
  (error = first_outside("shape_tflops_request", s.tflops_request, n, 0, kAny)) ||
      (error = first_outside("shape_tflops_limit", s.tflops_limit, n, 0, kAny)) ||
      (error = first_outside("shape_percent_request_ppm", s.percent_request_ppm, n, -1,
                             kPpmScale)) ||
      (error = first_outside("shape_percent_limit_ppm", s.percent_limit_ppm, n, -1,
                             kPpmScale)) ||
      (error = first_outside("shape_vram_request", s.vram_request, n, 0, kAny)) ||
      (error = first_outside("shape_vram_limit", s.vram_limit, n, 0, kAny)) ||
      (error = first_outside("shape_model_id", s.model_id, n, -1, kAny)) ||
      (error = first_outside("class_shape", c.shape, c.count, 0, shape_count - 1,
                             "is not an index into the shapes")) ||
      (error = first_outside("class_gpu_count", c.gpu_count, c.count, 1, kAny)) ||
      (error = first_outside("class_cpu", c.cpu, c.count, 0, kAny)) ||
      (error = first_outside("class_memory", c.memory, c.count, 0, kAny)) ||
      (error = first_outside("class_weight", c.weight, c.count, 0, kMaxClassWeight));
  return error;
}

std::optional<InputError> validate_candidates(const FragmentationQuery& q) {
  const auto nodes = static_cast<std::int64_t>(q.node_count);
  for (std::size_t i = 0; i < q.candidate_count; ++i) {
    const std::int32_t node = q.candidates[i];
    if (node < 0 || node >= nodes) {
      return detail::element_error("candidates", i, node,
                                   "is not a node index (" + std::to_string(nodes) + ")");
    }
    if (i > 0 && node <= q.candidates[i - 1]) {
      return detail::element_error("candidates", i, node, "must be strictly ascending");
    }
  }
  return std::nullopt;
}

// ---- The measure -----------------------------------------------------------------------------

// The GPUs of `node`, [begin, end), searched from `from` (candidates ascend, and so do the
// GPUs' nodes).
struct GpuRange {
  std::size_t begin;
  std::size_t end;
};

GpuRange gpus_of(const GpuColumns& g, std::int32_t node, std::size_t from) {
  const std::int32_t* first = std::lower_bound(g.node + from, g.node + g.count, node);
  const std::int32_t* last = std::upper_bound(first, g.node + g.count, node);
  return {static_cast<std::size_t>(first - g.node), static_cast<std::size_t>(last - g.node)};
}

// The GPUs the measure counts: ready, and of the pod's pool when it names one.
bool counted(const GpuColumns& g, std::size_t i, std::int64_t pool_id) {
  return g.state[i] == static_cast<std::uint8_t>(GpuState::ready) &&
         (pool_id < 0 || g.pool[i] == pool_id);
}

std::optional<InputError> validate_fitting_gpus(const GpuColumns& g, const FitRequest& pod,
                                                const FragmentationQuery& q) {
  std::size_t from = 0;
  for (std::size_t c = 0; c < q.candidate_count; ++c) {
    const GpuRange range = gpus_of(g, q.candidates[c], from);
    from = range.end;
    std::int64_t fitting = 0;
    for (std::size_t i = range.begin; i < range.end; ++i) {
      fitting += static_cast<std::int64_t>(q.gpu_fits[i] != 0 && counted(g, i, pod.pool_id));
    }
    if (fitting < pod.gpu_count) {
      return InputError{"gpu_fits", "node " + std::to_string(q.candidates[c]) +
                                        " has fewer than " + std::to_string(pod.gpu_count) +
                                        " GPUs that fit"};
    }
  }
  return std::nullopt;
}

// What one GPU of a request takes: a shape of the mix, or the pod's own request.
struct Take {
  std::int64_t tflops_request;
  std::int64_t tflops_limit;
  std::int64_t percent_request_ppm;
  std::int64_t percent_limit_ppm;
  std::int64_t vram_request;
  std::int64_t vram_limit;
  std::int64_t model_id;
};

// A GPU's sums of requests and limits, as placing a request raises them.
struct Usage {
  Wide tflops_requested;
  Wide vram_requested;
  Wide tflops_limited;
  Wide vram_limited;
};

// A request's TFLOPS on a GPU of this capacity: its share, rounded up, where one is given.
std::int64_t tflops_on(std::int64_t amount, std::int64_t ppm, std::int64_t capacity) {
  return ppm < 0 ? amount : detail::ceil_ppm(capacity, ppm);
}

std::int64_t share_ppm(Wide free, std::int64_t capacity) {
  if (capacity <= 0 || free <= 0) {
    return 0;
  }
  return static_cast<std::int64_t>(std::min<Wide>(free * kPpmScale / capacity, kPpmScale));
}

// The GPU's free share: the lower of its free TFLOPS and free VRAM shares.
std::int64_t free_ppm(const GpuColumns& g, std::size_t i, const Usage& u) {
  return std::min(share_ppm(g.tflops_capacity[i] - u.tflops_requested, g.tflops_capacity[i]),
                  share_ppm(g.vram_capacity[i] - u.vram_requested, g.vram_capacity[i]));
}

bool fits(const GpuColumns& g, std::size_t i, const Usage& u, const Take& t) {
  if (t.model_id >= 0 && g.model[i] != t.model_id) {
    return false;
  }
  const std::int64_t cap = g.tflops_capacity[i];
  return u.tflops_requested + tflops_on(t.tflops_request, t.percent_request_ppm, cap) <= cap &&
         u.vram_requested + t.vram_request <= g.vram_capacity[i] &&
         u.tflops_limited + tflops_on(t.tflops_limit, t.percent_limit_ppm, cap) <=
             g.tflops_virtual[i] &&
         u.vram_limited + t.vram_limit <= g.vram_virtual[i];
}

Usage usage_of(const GpuColumns& g, std::size_t i) {
  return {g.tflops_requested[i], g.vram_requested[i], g.tflops_limited[i], g.vram_limited[i]};
}

Usage placed(const GpuColumns& g, std::size_t i, const Take& t) {
  const std::int64_t cap = g.tflops_capacity[i];
  return {Wide{g.tflops_requested[i]} + tflops_on(t.tflops_request, t.percent_request_ppm, cap),
          Wide{g.vram_requested[i]} + t.vram_request,
          Wide{g.tflops_limited[i]} + tflops_on(t.tflops_limit, t.percent_limit_ppm, cap),
          Wide{g.vram_limited[i]} + t.vram_limit};
}

// kNeutralScore - kNeutralScore * delta / (|delta| + half), rounded half away from the middle.
std::int32_t score_of(Wide delta, Wide half) {
  const Wide size = delta < 0 ? -delta : delta;
  if (size == 0) {
    return kNeutralScore;
  }
  const Wide step = (2 * kNeutralScore * size + size + half) / (2 * (size + half));
  return static_cast<std::int32_t>(delta > 0 ? kNeutralScore - step : kNeutralScore + step);
}

// One GPU the pod may take, and what taking it alone adds.
struct Option {
  Wide added;
  std::int32_t gpu;
  std::size_t slot;
};

// Scores candidate nodes one at a time. Per-node state lives in vectors reused across the
// nodes, so scoring a node allocates nothing once they have grown to the largest node.
// A slot is one counted GPU of the node (in GPU order); per-(slot, shape) flags are row-major.
class NodeMeasure {
 public:
  NodeMeasure(const GpuColumns& gpus, const FitRequest& pod, const Mix& mix,
              const FragmentationQuery& query)
      : gpus_(gpus), mix_(mix), query_(query), pod_(pod), own_(take_of(pod)) {
    for (std::size_t s = 0; s < mix.shapes.count; ++s) {
      shapes_.push_back(take_of(mix.shapes, s));
    }
    for (std::size_t c = 0; c < mix.classes.count; ++c) {
      total_weight_ += mix.classes.weight[c];
    }
    const std::size_t n = shapes_.size();
    fit_count_.resize(n);
    unfit_free_.resize(n);
    fit_count_after_.resize(n);
    unfit_free_after_.resize(n);
  }

  // Scores `node`, whose GPUs are `range`, and writes the GPUs the pod would take to `chosen`.
  std::int32_t score(std::int32_t node, GpuRange range, std::int32_t* chosen) {
    load(range);
    const auto n = static_cast<std::size_t>(node);
    const std::int64_t cpu = query_.node_cpu_free[n];
    const std::int64_t memory = query_.node_memory_free[n];
    weigh_hostable(cpu, memory);
    before_ = expected(fit_count_.data(), unfit_free_.data(), total_free_);
    // Every placement leaves the node the same cores and memory.
    weigh_hostable(Wide{cpu} - query_.pod_cpu, Wide{memory} - query_.pod_memory);

    const auto k = static_cast<std::size_t>(pod_.gpu_count);
    options_.clear();
    if (k > 0) {
      for (std::size_t slot = 0; slot < slot_gpu_.size(); ++slot) {
        const std::size_t gpu = slot_gpu_[slot];
        if (query_.gpu_fits[gpu] != 0) {
          options_.push_back({added(&slot, 1), static_cast<std::int32_t>(gpu), slot});
        }
      }
    }
    // Validation ensured at least k options.
    std::partial_sort(options_.begin(), options_.begin() + static_cast<std::ptrdiff_t>(k),
                      options_.end(), [](const Option& a, const Option& b) {
                        return a.added != b.added ? a.added < b.added : a.gpu < b.gpu;
                      });
    on_.clear();
    for (std::size_t j = 0; j < k; ++j) {
      chosen[j] = options_[j].gpu;
      on_.push_back(options_[j].slot);
    }
    return score_of(added(on_.data(), k), total_weight_ * query_.half_score_ppm);
  }

 private:
  static Take take_of(const FitRequest& r) {
    return {r.tflops_request, r.tflops_limit, r.percent_request_ppm, r.percent_limit_ppm,
            r.vram_request,   r.vram_limit,   -1};
  }

  static Take take_of(const MixShapes& s, std::size_t i) {
    return {s.tflops_request[i],      s.tflops_limit[i], s.percent_request_ppm[i],
            s.percent_limit_ppm[i],   s.vram_request[i], s.vram_limit[i],
            s.model_id[i]};
  }

  // The node's counted GPUs as they are, and as they would be with the pod on each one it
  // may take; per shape, how many fit and the free share of those that do not.
  void load(GpuRange range) {
    const std::size_t shape_count = shapes_.size();
    slot_gpu_.clear();
    for (std::size_t i = range.begin; i < range.end; ++i) {
      if (counted(gpus_, i, pod_.pool_id)) {
        slot_gpu_.push_back(i);
      }
    }
    const std::size_t slots = slot_gpu_.size();
    free_.resize(slots);
    placed_free_.resize(slots);
    fits_.resize(slots * shape_count);
    placed_fits_.resize(slots * shape_count);
    std::fill(fit_count_.begin(), fit_count_.end(), 0);
    std::fill(unfit_free_.begin(), unfit_free_.end(), 0);
    total_free_ = 0;
    for (std::size_t slot = 0; slot < slots; ++slot) {
      const std::size_t gpu = slot_gpu_[slot];
      const Usage now = usage_of(gpus_, gpu);
      free_[slot] = free_ppm(gpus_, gpu, now);
      total_free_ += free_[slot];
      for (std::size_t s = 0; s < shape_count; ++s) {
        const bool fit = fits(gpus_, gpu, now, shapes_[s]);
        fits_[slot * shape_count + s] = static_cast<std::uint8_t>(fit);
        fit_count_[s] += static_cast<std::int64_t>(fit);
        unfit_free_[s] += fit ? 0 : free_[slot];
      }
      if (pod_.gpu_count > 0 && query_.gpu_fits[gpu] != 0) {
        const Usage then = placed(gpus_, gpu, own_);
        placed_free_[slot] = free_ppm(gpus_, gpu, then);
        for (std::size_t s = 0; s < shape_count; ++s) {
          placed_fits_[slot * shape_count + s] =
              static_cast<std::uint8_t>(fits(gpus_, gpu, then, shapes_[s]));
        }
      }
    }
  }

  // hostable_[s * (slots + 1) + n]: the weight of the classes of shape s that need at most n
  // GPUs and whose cores and memory fit in `cpu` and `memory`. Summing the classes once per
  // node makes each placement cost a pass over the shapes rather than over the classes.
  void weigh_hostable(Wide cpu, Wide memory) {
    const MixClasses& c = mix_.classes;
    const std::size_t width = slot_gpu_.size() + 1;
    std::vector<std::int64_t>& table = hostable_;
    table.assign(shapes_.size() * width, 0);
    for (std::size_t i = 0; i < c.count; ++i) {
      const auto gpus = static_cast<std::size_t>(c.gpu_count[i]);
      if (cpu >= c.cpu[i] && memory >= c.memory[i] && gpus < width) {
        table[static_cast<std::size_t>(c.shape[i]) * width + gpus] += c.weight[i];
      }
    }
    for (std::size_t s = 0; s < shapes_.size(); ++s) {
      std::int64_t* row = table.data() + s * width;
      std::partial_sum(row, row + width, row);
    }
  }

  // Sum over the classes of weight x the free share the class cannot use: all of it, less
  // that of the GPUs fitting its shape where the node hosts the class (enough cores and
  // memory per hostable_, and at least gpu_count GPUs fitting).
  Wide expected(const std::int64_t* fit_count, const std::int64_t* unfit_free,
                std::int64_t total_free) const {
    const std::size_t width = slot_gpu_.size() + 1;
    Wide sum = total_weight_ * total_free;
    for (std::size_t s = 0; s < shapes_.size(); ++s) {
      const std::int64_t hosted = hostable_[s * width + static_cast<std::size_t>(fit_count[s])];
      sum += Wide{hosted} * (unfit_free[s] - total_free);
    }
    return sum;
  }

  // What placing the pod on the given slots adds to the expected fragmentation, with the
  // node's cores and memory reduced by the pod's, plus the best-fit tie-break: what those
  // GPUs have left (all the node's GPUs for a pod without any), weighed 1/tie_divisor.
  Wide added(const std::size_t* slots, std::size_t count) {
    const std::size_t shape_count = shapes_.size();
    std::copy(fit_count_.begin(), fit_count_.end(), fit_count_after_.begin());
    std::copy(unfit_free_.begin(), unfit_free_.end(), unfit_free_after_.begin());
    std::int64_t total_free = total_free_;
    std::int64_t left_on = 0;
    for (std::size_t j = 0; j < count; ++j) {
      const std::size_t slot = slots[j];
      total_free += placed_free_[slot] - free_[slot];
      left_on += placed_free_[slot];
      for (std::size_t s = 0; s < shape_count; ++s) {
        const bool was = fits_[slot * shape_count + s] != 0;
        const bool now = placed_fits_[slot * shape_count + s] != 0;
        fit_count_after_[s] += static_cast<std::int64_t>(now) - static_cast<std::int64_t>(was);
        unfit_free_after_[s] += (now ? 0 : placed_free_[slot]) - (was ? 0 : free_[slot]);
      }
    }
    if (count == 0) {
      left_on = total_free;  // a pod without GPUs: what the whole node has left
    }
    const Wide after = expected(fit_count_after_.data(), unfit_free_after_.data(), total_free);
    return after - before_ + total_weight_ * left_on / query_.tie_divisor;
  }

  const GpuColumns& gpus_;
  const Mix& mix_;
  const FragmentationQuery& query_;
  const FitRequest& pod_;
  const Take own_;
  std::vector<Take> shapes_;
  Wide total_weight_ = 0;

  std::vector<std::size_t> slot_gpu_;
  std::vector<std::int64_t> free_;
  std::vector<std::int64_t> placed_free_;
  std::vector<std::uint8_t> fits_;
  std::vector<std::uint8_t> placed_fits_;
  std::vector<std::int64_t> fit_count_;
  std::vector<std::int64_t> unfit_free_;
  std::int64_t total_free_ = 0;
  std::vector<std::int64_t> hostable_;
  Wide before_ = 0;

  std::vector<std::int64_t> fit_count_after_;
  std::vector<std::int64_t> unfit_free_after_;
  std::vector<Option> options_;
  std::vector<std::size_t> on_;
};

}  // namespace

std::optional<InputError> validate_fragmentation(const GpuColumns& gpus, const FitRequest& pod,
                                                 const Mix& mix,
                                                 const FragmentationQuery& query) {
  if (auto error = detail::check_range("gpu_count", pod.gpu_count, 0, kMaxGpuCount)) {
    return error;
  }
  // validate_fit checks the GPUs' layout and the request's amounts; it wants at least one
  // GPU, and worker counts, which the measure has none of.
  FitRequest layout = pod;
  layout.gpu_count = 1;
  const std::vector<std::int32_t> no_workers(query.node_count, 0);
  const NodeColumns nodes{query.node_count, nullptr, no_workers.data()};
  std::optional<InputError> error;
  (error = validate_fit(gpus, nodes, layout)) || (error = validate_amounts(gpus)) ||
      (error = validate_mix(mix)) || (error = validate_candidates(query)) ||
      (error = detail::check_range("half_score_ppm", query.half_score_ppm, 0,
                                   std::numeric_limits<std::int64_t>::max())) ||
      (error = detail::check_range("tie_divisor", query.tie_divisor, 1,
                                   std::numeric_limits<std::int64_t>::max())) ||
      (error = validate_fitting_gpus(gpus, pod, query));
  return error;
}

void fragmentation_scores(const GpuColumns& gpus, const FitRequest& pod, const Mix& mix,
                          const FragmentationQuery& query, std::int32_t* score,
                          std::int32_t* chosen) noexcept {
  NodeMeasure measure(gpus, pod, mix, query);
  const auto k = static_cast<std::size_t>(pod.gpu_count);
  std::size_t from = 0;
  for (std::size_t c = 0; c < query.candidate_count; ++c) {
    const GpuRange range = gpus_of(gpus, query.candidates[c], from);
    from = range.end;
    score[c] = measure.score(query.candidates[c], range, chosen + c * k);
  }
}

}  // namespace tf::scoring
