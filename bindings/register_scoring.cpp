#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "registers.h"
#include "../cpp/scoring/gpu_search.h"
#include "tf/scoring.h"

namespace py = pybind11;

namespace tf::bindings {
namespace {

// The buffer of a 1-D, C-contiguous, aligned numpy array of exactly dtype T, `expected`
// entries long (any length when nullopt). Never converts: a silent copy would hide a caller's
// mistake and, for outputs of the allocator, cost as much as the kernel.
template <typename T>
const T* column(const py::object& value, const char* name,
                std::optional<py::ssize_t> expected = std::nullopt,
                const char* expected_from = "") {
  const auto dtype = [] { return std::string(py::str(py::dtype::of<T>())); };
  if (!py::isinstance<py::array>(value)) {
    throw py::type_error(std::string(name) + ": expected a numpy array of " + dtype() +
                         ", got " + std::string(py::str(py::type::of(value).attr("__name__"))));
  }
  const auto array = py::reinterpret_borrow<py::array>(value);
  if (!py::isinstance<py::array_t<T>>(value)) {
    throw py::type_error(std::string(name) + ": expected dtype " + dtype() + ", got " +
                         std::string(py::str(array.dtype())));
  }
  if (array.ndim() != 1) {
    throw py::value_error(std::string(name) + ": must be 1-D, got " +
                          std::to_string(array.ndim()) + " dimensions");
  }
  const int layout = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                     py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if ((array.flags() & layout) != layout) {
    throw py::value_error(std::string(name) + ": must be C-contiguous and aligned");
  }
  if (expected && array.shape(0) != *expected) {
    throw py::value_error(std::string(name) + ": length " + std::to_string(array.shape(0)) +
                          ", expected " + std::to_string(*expected) + " (the length of " +
                          expected_from + ")");
  }
  return static_cast<const T*>(array.data());
}

py::ssize_t length_of(const py::object& value) {
  return py::reinterpret_borrow<py::array>(value).shape(0);
}

void raise_if(const std::optional<scoring::InputError>& error) {
  if (error) {
    throw py::value_error(error->argument + ": " + error->message);
  }
}

// Like column, for 1-D (columns == 0) or 2-D (rows x columns) arrays.
template <typename T>
const T* column_checked(const py::object& value, const char* name, py::ssize_t rows,
                        py::ssize_t columns) {
  if (columns == 0) {
    return column<T>(value, name, rows, "the fit's inputs");
  }
  if (!py::isinstance<py::array_t<T>>(value)) {
    throw py::type_error(std::string(name) + ": expected a 2-D numpy array of " +
                         std::string(py::str(py::dtype::of<T>())));
  }
  const auto array = py::reinterpret_borrow<py::array>(value);
  const int layout = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                     py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if (array.ndim() != 2 || array.shape(0) != rows || array.shape(1) != columns ||
      (array.flags() & layout) != layout) {
    throw py::value_error(std::string(name) + ": must be a C-contiguous " +
                          std::to_string(rows) + " x " + std::to_string(columns) + " array");
  }
  return static_cast<const T*>(array.data());
}

// A writable output of an earlier call, to be updated in place: exact dtype and shape.
template <typename T>
T* output(const py::object& value, const char* name, py::ssize_t rows, py::ssize_t columns = 0) {
  const T* data = column_checked<T>(value, name, rows, columns);
  if (!py::reinterpret_borrow<py::array>(value).writeable()) {
    throw py::value_error(std::string(name) + ": must be writable");
  }
  return const_cast<T*>(data);
}

py::tuple refit(const scoring::GpuColumns& gpus, const scoring::NodeColumns& nodes,
                const scoring::FitRequest& request, const py::object& changed,
                const py::object& previous, py::ssize_t g, py::ssize_t n, py::ssize_t k);

// The GPU columns of GpuArrays, each checked against the length of `node`.
scoring::GpuColumns gpu_columns(const py::object& node, const py::object& state,
                                const py::object& pool, const py::object& model,
                                const py::object& tflops_capacity,
                                const py::object& vram_capacity,
                                const py::object& tflops_virtual, const py::object& vram_virtual,
                                const py::object& tflops_requested,
                                const py::object& vram_requested,
                                const py::object& tflops_limited,
                                const py::object& vram_limited) {
  scoring::GpuColumns gpus;
  gpus.node = column<std::int32_t>(node, "node");
  const py::ssize_t g = length_of(node);
  gpus.count = static_cast<std::size_t>(g);
  gpus.state = column<std::uint8_t>(state, "state", g, "node");
  gpus.pool = column<std::int32_t>(pool, "pool", g, "node");
  gpus.model = column<std::int32_t>(model, "model", g, "node");
  gpus.tflops_capacity = column<std::int64_t>(tflops_capacity, "tflops_capacity", g, "node");
  gpus.vram_capacity = column<std::int64_t>(vram_capacity, "vram_capacity", g, "node");
  gpus.tflops_virtual = column<std::int64_t>(tflops_virtual, "tflops_virtual", g, "node");
  gpus.vram_virtual = column<std::int64_t>(vram_virtual, "vram_virtual", g, "node");
  gpus.tflops_requested = column<std::int64_t>(tflops_requested, "tflops_requested", g, "node");
  gpus.vram_requested = column<std::int64_t>(vram_requested, "vram_requested", g, "node");
  gpus.tflops_limited = column<std::int64_t>(tflops_limited, "tflops_limited", g, "node");
  gpus.vram_limited = column<std::int64_t>(vram_limited, "vram_limited", g, "node");
  return gpus;
}

// The node columns, checked against each other.
scoring::NodeColumns node_columns(const py::object& node_mask, const py::object& node_workers) {
  scoring::NodeColumns nodes;
  nodes.mask = column<std::uint8_t>(node_mask, "node_mask");
  nodes.count = static_cast<std::size_t>(length_of(node_mask));
  nodes.workers = column<std::int32_t>(node_workers, "node_workers",
                                       static_cast<py::ssize_t>(nodes.count), "node_mask");
  return nodes;
}

py::tuple fit_gpus(const scoring::GpuColumns& gpus, const scoring::NodeColumns& nodes,
                   const scoring::FitRequest& request, const py::object& changed,
                   const py::object& previous) {
  const auto g = static_cast<py::ssize_t>(gpus.count);
  const auto n = static_cast<py::ssize_t>(nodes.count);
  std::optional<scoring::InputError> error;
  {
    py::gil_scoped_release release;
    error = changed.is_none() ? scoring::validate_fit(gpus, nodes, request)
                              : scoring::validate_refit(gpus, nodes, request);
  }
  raise_if(error);

  const auto k = static_cast<py::ssize_t>(request.gpu_count);
  if (!changed.is_none()) {
    return refit(gpus, nodes, request, changed, previous, g, n, k);
  }
  py::array_t<std::uint8_t> gpu_reason(g);
  py::array_t<std::int32_t> gpu_score(g);
  py::array_t<std::uint8_t> node_reason(n);
  py::array_t<std::int32_t> node_score(n);
  py::array_t<std::int32_t> node_gpus({n, k});
  const scoring::FitOutput out{gpu_reason.mutable_data(), gpu_score.mutable_data(),
                               node_reason.mutable_data(), node_score.mutable_data(),
                               node_gpus.mutable_data()};
  std::int32_t best_node = -1;
  {
    py::gil_scoped_release release;
    best_node = scoring::fit_gpus(gpus, nodes, request, out);
    if (best_node == scoring::kNegativeAmount) {
      error = scoring::validate_amounts(gpus);
    }
  }
  raise_if(error);
  return py::make_tuple(gpu_reason, gpu_score, node_reason, node_score, node_gpus, best_node);
}

// Updates the outputs of an earlier call for the same request in place, recomputing only the
// `changed` nodes; returns them with the new best node.
py::tuple refit(const scoring::GpuColumns& gpus, const scoring::NodeColumns& nodes,
                const scoring::FitRequest& request, const py::object& changed,
                const py::object& previous, py::ssize_t g, py::ssize_t n, py::ssize_t k) {
  const auto outputs = py::reinterpret_borrow<py::tuple>(previous);
  if (!py::isinstance<py::tuple>(previous) || outputs.size() != 5) {
    throw py::type_error(
        "previous: expected the (gpu_reason, gpu_score, node_reason, node_score, node_gpus) "
        "of an earlier call");
  }
  const scoring::FitOutput out{output<std::uint8_t>(outputs[0], "gpu_reason", g),
                               output<std::int32_t>(outputs[1], "gpu_score", g),
                               output<std::uint8_t>(outputs[2], "node_reason", n),
                               output<std::int32_t>(outputs[3], "node_score", n),
                               output<std::int32_t>(outputs[4], "node_gpus", n, k)};
  const auto* which = column<std::int32_t>(changed, "changed");
  const auto count = static_cast<std::size_t>(length_of(changed));
  for (std::size_t i = 0; i < count; ++i) {
    if (which[i] < 0 || which[i] >= n) {
      throw py::value_error("changed: value " + std::to_string(which[i]) + " at index " +
                            std::to_string(i) + " is not an index into node_mask");
    }
  }
  std::optional<scoring::InputError> error;
  std::int32_t best_node = -1;
  {
    py::gil_scoped_release release;
    best_node = scoring::refit_nodes(gpus, nodes, request, out, which, count);
    if (best_node == scoring::kNegativeAmount) {
      error = scoring::validate_amounts(gpus);
    }
  }
  raise_if(error);
  return py::make_tuple(outputs[0], outputs[1], outputs[2], outputs[3], outputs[4], best_node);
}

// The fields of a pod's request the fragmentation measure reads, from any object with them
// as attributes (a GpuFitRequest, or a HostRequest, which has no model or placement mode).
scoring::FitRequest pod_request_of(const py::object& r) {
  const auto integer = [&r](const char* name) { return r.attr(name).cast<std::int64_t>(); };
  scoring::FitRequest request;
  request.tflops_request = integer("tflops_request");
  request.tflops_limit = integer("tflops_limit");
  request.vram_request = integer("vram_request");
  request.vram_limit = integer("vram_limit");
  request.percent_request_ppm = integer("percent_request_ppm");
  request.percent_limit_ppm = integer("percent_limit_ppm");
  request.gpu_count = integer("gpu_count");
  request.pool_id = integer("pool_id");
  return request;
}

// A FitRequest from any object with its fields as attributes (a GpuFitRequest).
scoring::FitRequest request_of(const py::object& r) {
  scoring::FitRequest request = pod_request_of(r);
  request.model_id = r.attr("model_id").cast<std::int64_t>();
  request.max_worker_per_node = r.attr("max_worker_per_node").cast<std::int64_t>();
  request.mode = r.attr("mode").cast<std::int64_t>();
  request.vram_weight = r.attr("vram_weight").cast<double>();
  request.tflops_weight = r.attr("tflops_weight").cast<double>();
  return request;
}

// node_start (nodes + 1 offsets into the GPUs, from 0 to the GPU count, non-decreasing) and
// the writable summary of those nodes (kNodeSummaryWidth columns of nodes entries, flat).
std::pair<const std::int64_t*, double*> node_layout(const py::object& node_start,
                                                    const py::object& summary,
                                                    const scoring::GpuColumns& gpus) {
  const auto* start = column<std::int64_t>(node_start, "node_start");
  const py::ssize_t rows = length_of(node_start) - 1;
  if (rows < 0 || start[0] != 0 || start[rows] != static_cast<std::int64_t>(gpus.count)) {
    // Most often a GPU on a node the layout does not have: name that GPU.
    for (std::size_t i = 0; rows >= 0 && i < gpus.count; ++i) {
      if (gpus.node[i] < 0 || gpus.node[i] >= rows) {
        throw py::value_error("node: value " + std::to_string(gpus.node[i]) + " at index " +
                              std::to_string(i) + " is not an index into node_start's " +
                              std::to_string(rows) + " nodes");
      }
    }
    throw py::value_error("node_start: must run from 0 to the number of GPUs");
  }
  for (py::ssize_t n = 0; n < rows; ++n) {
    if (start[n + 1] < start[n]) {
      throw py::value_error("node_start: value " + std::to_string(start[n + 1]) +
                            " at index " + std::to_string(n + 1) + " is below the previous");
    }
  }
  return {start, output<double>(summary, "summary", rows * static_cast<py::ssize_t>(scoring::kNodeSummaryWidth))};
}

void summarize_gpu_nodes(const scoring::GpuColumns& gpus, const py::object& node_start,
                         const py::object& summary, const py::object& changed,
                         double vram_weight, double tflops_weight) {
  const auto [start, rows] = node_layout(node_start, summary, gpus);
  const auto* which = column<std::int32_t>(changed, "changed");
  const auto count = static_cast<std::size_t>(length_of(changed));
  const py::ssize_t n = length_of(node_start) - 1;
  for (std::size_t i = 0; i < count; ++i) {
    if (which[i] < 0 || which[i] >= n) {
      throw py::value_error("changed: value " + std::to_string(which[i]) + " at index " +
                            std::to_string(i) + " is not a node index");
    }
  }
  bool ok = true;
  {
    py::gil_scoped_release release;
    ok = scoring::summarize_nodes(gpus, start, static_cast<std::size_t>(n), which, count,
                                  vram_weight, tflops_weight, rows);
  }
  if (!ok) {
    raise_if(scoring::validate_amounts(gpus));
  }
}

py::tuple search_gpus(const scoring::GpuColumns& gpus, const scoring::NodeColumns& nodes,
                      const scoring::FitRequest& request, const py::object& node_start,
                      const py::object& summary, const py::object& bonus,
                      std::int64_t gpu_weight) {
  const auto [start, rows] = node_layout(node_start, summary, gpus);
  const auto n = static_cast<py::ssize_t>(nodes.count);
  if (length_of(node_start) - 1 != n) {
    throw py::value_error("node_start: length " + std::to_string(length_of(node_start)) +
                          ", expected " + std::to_string(n + 1) + " (nodes + 1)");
  }
  const auto* extra = column<std::int64_t>(bonus, "bonus", n, "node_mask");
  if (gpu_weight < 0) {
    throw py::value_error("gpu_weight: must be >= 0, got " + std::to_string(gpu_weight));
  }
  std::optional<scoring::InputError> error;
  py::array_t<std::int32_t> chosen(static_cast<py::ssize_t>(request.gpu_count));
  std::int32_t best_node = -1;
  {
    py::gil_scoped_release release;
    error = scoring::validate_refit(gpus, nodes, request);
    if (!error) {
      best_node = scoring::search_best_node(gpus, nodes, request, start, rows, extra,
                                            gpu_weight, chosen.mutable_data());
      if (best_node == scoring::kNegativeAmount) {
        error = scoring::validate_amounts(gpus);
      }
    }
  }
  raise_if(error);
  return py::make_tuple(best_node, chosen);
}

py::array_t<std::int64_t> broken_linear(const py::object& requested, const py::object& capacity,
                                         const py::object& utilization, const py::object& score) {
  scoring::UsageColumns usage;
  usage.requested = column<std::int64_t>(requested, "requested");
  const py::ssize_t n = length_of(requested);
  usage.count = static_cast<std::size_t>(n);
  usage.capacity = column<std::int64_t>(capacity, "capacity", n, "requested");
  scoring::Shape shape;
  shape.utilization = column<std::int64_t>(utilization, "utilization");
  const py::ssize_t k = length_of(utilization);
  shape.count = static_cast<std::size_t>(k);
  shape.score = column<std::int64_t>(score, "score", k, "utilization");

  py::array_t<std::int64_t> result(n);
  std::int64_t* out = result.mutable_data();
  std::optional<scoring::InputError> error;
  {
    py::gil_scoped_release release;
    error = scoring::validate_broken_linear(usage, shape);
    if (!error) {
      scoring::broken_linear(usage, shape, out);
    }
  }
  raise_if(error);
  return result;
}

// The mix's shape columns, as long as shape_tflops_request.
scoring::MixShapes mix_shapes(const py::object& tflops_request, const py::object& tflops_limit,
                              const py::object& percent_request_ppm,
                              const py::object& percent_limit_ppm,
                              const py::object& vram_request, const py::object& vram_limit,
                              const py::object& model_id) {
  scoring::MixShapes s;
  s.tflops_request = column<std::int64_t>(tflops_request, "shape_tflops_request");
  const py::ssize_t n = length_of(tflops_request);
  s.count = static_cast<std::size_t>(n);
  const char* from = "shape_tflops_request";
  s.tflops_limit = column<std::int64_t>(tflops_limit, "shape_tflops_limit", n, from);
  s.percent_request_ppm =
      column<std::int64_t>(percent_request_ppm, "shape_percent_request_ppm", n, from);
  s.percent_limit_ppm =
      column<std::int64_t>(percent_limit_ppm, "shape_percent_limit_ppm", n, from);
  s.vram_request = column<std::int64_t>(vram_request, "shape_vram_request", n, from);
  s.vram_limit = column<std::int64_t>(vram_limit, "shape_vram_limit", n, from);
  s.model_id = column<std::int32_t>(model_id, "shape_model_id", n, from);
  return s;
}

// The mix's class columns, as long as class_shape.
scoring::MixClasses mix_classes(const py::object& shape, const py::object& gpu_count,
                                const py::object& cpu, const py::object& memory,
                                const py::object& weight) {
  scoring::MixClasses c;
  c.shape = column<std::int32_t>(shape, "class_shape");
  const py::ssize_t k = length_of(shape);
  c.count = static_cast<std::size_t>(k);
  c.gpu_count = column<std::int32_t>(gpu_count, "class_gpu_count", k, "class_shape");
  c.cpu = column<std::int64_t>(cpu, "class_cpu", k, "class_shape");
  c.memory = column<std::int64_t>(memory, "class_memory", k, "class_shape");
  c.weight = column<std::int64_t>(weight, "class_weight", k, "class_shape");
  return c;
}

py::tuple fragmentation_scores(const scoring::GpuColumns& gpus, const py::object& gpu_fits,
                               const py::object& candidates, const py::object& request,
                               const py::object& node_cpu_free,
                               const py::object& node_memory_free, const scoring::Mix& mix,
                               scoring::FragmentationQuery query) {
  const scoring::FitRequest pod = pod_request_of(request);
  query.gpu_fits =
      column<std::uint8_t>(gpu_fits, "gpu_fits", static_cast<py::ssize_t>(gpus.count), "node");
  query.candidates = column<std::int32_t>(candidates, "candidates");
  query.candidate_count = static_cast<std::size_t>(length_of(candidates));
  query.node_cpu_free = column<std::int64_t>(node_cpu_free, "node_cpu_free");
  const py::ssize_t nodes = length_of(node_cpu_free);
  query.node_count = static_cast<std::size_t>(nodes);
  query.node_memory_free =
      column<std::int64_t>(node_memory_free, "node_memory_free", nodes, "node_cpu_free");

  std::optional<scoring::InputError> error;
  {
    py::gil_scoped_release release;
    error = scoring::validate_fragmentation(gpus, pod, mix, query);
  }
  raise_if(error);
  const auto rows = static_cast<py::ssize_t>(query.candidate_count);
  py::array_t<std::int32_t> score(rows);
  py::array_t<std::int32_t> chosen({rows, static_cast<py::ssize_t>(pod.gpu_count)});
  std::int32_t* score_out = score.mutable_data();
  std::int32_t* chosen_out = chosen.mutable_data();
  {
    py::gil_scoped_release release;
    scoring::fragmentation_scores(gpus, pod, mix, query, score_out, chosen_out);
  }
  return py::make_tuple(score, chosen);
}

}  // namespace

void register_scoring(py::module_& m) {
  m.def(
      "fit_gpus",
      [](const py::object& node, const py::object& state, const py::object& pool,
         const py::object& model, const py::object& tflops_capacity,
         const py::object& vram_capacity, const py::object& tflops_virtual,
         const py::object& vram_virtual, const py::object& tflops_requested,
         const py::object& vram_requested, const py::object& tflops_limited,
         const py::object& vram_limited, const py::object& node_mask,
         const py::object& node_workers, std::int64_t tflops_request, std::int64_t tflops_limit,
         std::int64_t vram_request, std::int64_t vram_limit, std::int64_t percent_request_ppm,
         std::int64_t percent_limit_ppm, std::int64_t gpu_count, std::int64_t pool_id,
         std::int64_t model_id, std::int64_t max_worker_per_node, std::int64_t mode,
         double vram_weight, double tflops_weight, const py::object& changed,
         const py::object& previous) {
        const scoring::FitRequest request{
            tflops_request,      tflops_limit, vram_request,
            vram_limit,          percent_request_ppm, percent_limit_ppm,
            gpu_count,           pool_id,      model_id,
            max_worker_per_node, mode,         vram_weight,
            tflops_weight};
        return fit_gpus(gpu_columns(node, state, pool, model, tflops_capacity, vram_capacity,
                                    tflops_virtual, vram_virtual, tflops_requested,
                                    vram_requested, tflops_limited, vram_limited),
                        node_columns(node_mask, node_workers), request, changed, previous);
      },
      py::kw_only(), py::arg("node"), py::arg("state"), py::arg("pool"), py::arg("model"),
      py::arg("tflops_capacity"), py::arg("vram_capacity"), py::arg("tflops_virtual"),
      py::arg("vram_virtual"), py::arg("tflops_requested"), py::arg("vram_requested"),
      py::arg("tflops_limited"), py::arg("vram_limited"), py::arg("node_mask"),
      py::arg("node_workers"), py::arg("tflops_request"), py::arg("tflops_limit"),
      py::arg("vram_request"), py::arg("vram_limit"), py::arg("percent_request_ppm"),
      py::arg("percent_limit_ppm"), py::arg("gpu_count"), py::arg("pool_id"),
      py::arg("model_id"), py::arg("max_worker_per_node"), py::arg("mode"),
      py::arg("vram_weight"), py::arg("tflops_weight"), py::arg("changed") = py::none(),
      py::arg("previous") = py::none(),
      "Filter and score every GPU for one request, choose gpu_count GPUs per node and the best "
      "node. With `changed` (int32 node indices) and `previous` (the five output arrays of an "
      "earlier call for the same request), only those nodes are recomputed, in place. Arrays are used in place (exact dtypes, 1-D, C-contiguous; never copied) and must "
      "not change during the call, which runs without the GIL. Returns (gpu_reason, gpu_score, "
      "node_reason, node_score, node_gpus, best_node). TypeError for a wrong dtype, ValueError "
      "naming the argument for any other bad input.");

  m.def(
      "summarize_gpu_nodes",
      [](const py::object& node, const py::object& state, const py::object& pool,
         const py::object& model, const py::object& tflops_capacity,
         const py::object& vram_capacity, const py::object& tflops_virtual,
         const py::object& vram_virtual, const py::object& tflops_requested,
         const py::object& vram_requested, const py::object& tflops_limited,
         const py::object& vram_limited, const py::object& node_start,
         const py::object& summary, const py::object& changed, double vram_weight,
         double tflops_weight) {
        summarize_gpu_nodes(gpu_columns(node, state, pool, model, tflops_capacity,
                                        vram_capacity, tflops_virtual, vram_virtual,
                                        tflops_requested, vram_requested, tflops_limited,
                                        vram_limited),
                            node_start, summary, changed, vram_weight, tflops_weight);
      },
      py::kw_only(), py::arg("node"), py::arg("state"), py::arg("pool"), py::arg("model"),
      py::arg("tflops_capacity"), py::arg("vram_capacity"), py::arg("tflops_virtual"),
      py::arg("vram_virtual"), py::arg("tflops_requested"), py::arg("vram_requested"),
      py::arg("tflops_limited"), py::arg("vram_limited"), py::arg("node_start"),
      py::arg("summary"), py::arg("changed"), py::arg("vram_weight"), py::arg("tflops_weight"),
      "Rewrites, in the flat float64 `summary` (NODE_SUMMARY_WIDTH columns of one entry per "
      "node), the entries of the `changed` nodes (int32), whose GPUs are [node_start[n], "
      "node_start[n + 1]): what bounds their score for any request with these weights (see "
      "cpp/scoring/gpu_search.h). ValueError naming the argument for bad input or a negative "
      "amount.");
  m.attr("NODE_SUMMARY_WIDTH") = py::int_(static_cast<std::size_t>(scoring::kNodeSummaryWidth));

  m.def(
      "search_gpus",
      [](const py::object& node, const py::object& state, const py::object& pool,
         const py::object& model, const py::object& tflops_capacity,
         const py::object& vram_capacity, const py::object& tflops_virtual,
         const py::object& vram_virtual, const py::object& tflops_requested,
         const py::object& vram_requested, const py::object& tflops_limited,
         const py::object& vram_limited, const py::object& node_mask,
         const py::object& node_workers, const py::object& request,
         const py::object& node_start, const py::object& summary, const py::object& bonus,
         std::int64_t gpu_weight) {
        return search_gpus(gpu_columns(node, state, pool, model, tflops_capacity,
                                       vram_capacity, tflops_virtual, vram_virtual,
                                       tflops_requested, vram_requested, tflops_limited,
                                       vram_limited),
                           node_columns(node_mask, node_workers), request_of(request),
                           node_start, summary, bonus, gpu_weight);
      },
      py::kw_only(), py::arg("node"), py::arg("state"), py::arg("pool"), py::arg("model"),
      py::arg("tflops_capacity"), py::arg("vram_capacity"), py::arg("tflops_virtual"),
      py::arg("vram_virtual"), py::arg("tflops_requested"), py::arg("vram_requested"),
      py::arg("tflops_limited"), py::arg("vram_limited"), py::arg("node_mask"),
      py::arg("node_workers"), py::arg("request"), py::arg("node_start"), py::arg("summary"),
      py::arg("bonus"), py::arg("gpu_weight"),
      "The node fit_gpus finds feasible with the highest gpu_weight * node_score + bonus[n] "
      "(ties to the lower index), visiting nodes by a bound from `summary` (kept current by "
      "summarize_gpu_nodes) until none left can win. Returns (best_node, chosen GPUs as "
      "int32), best_node -1 when no node is feasible.");

  m.def(
      "fragmentation_scores",
      [](const py::object& node, const py::object& state, const py::object& pool,
         const py::object& model, const py::object& tflops_capacity,
         const py::object& vram_capacity, const py::object& tflops_virtual,
         const py::object& vram_virtual, const py::object& tflops_requested,
         const py::object& vram_requested, const py::object& tflops_limited,
         const py::object& vram_limited, const py::object& gpu_fits,
         const py::object& candidates, const py::object& request, std::int64_t pod_cpu,
         std::int64_t pod_memory, const py::object& node_cpu_free,
         const py::object& node_memory_free, const py::object& shape_tflops_request,
         const py::object& shape_tflops_limit, const py::object& shape_percent_request_ppm,
         const py::object& shape_percent_limit_ppm, const py::object& shape_vram_request,
         const py::object& shape_vram_limit, const py::object& shape_model_id,
         const py::object& class_shape, const py::object& class_gpu_count,
         const py::object& class_cpu, const py::object& class_memory,
         const py::object& class_weight, std::int64_t half_score_ppm,
         std::int64_t tie_divisor) {
        const scoring::Mix mix{
            mix_shapes(shape_tflops_request, shape_tflops_limit, shape_percent_request_ppm,
                       shape_percent_limit_ppm, shape_vram_request, shape_vram_limit,
                       shape_model_id),
            mix_classes(class_shape, class_gpu_count, class_cpu, class_memory, class_weight)};
        scoring::FragmentationQuery query;
        query.pod_cpu = pod_cpu;
        query.pod_memory = pod_memory;
        query.half_score_ppm = half_score_ppm;
        query.tie_divisor = tie_divisor;
        return fragmentation_scores(
            gpu_columns(node, state, pool, model, tflops_capacity, vram_capacity,
                        tflops_virtual, vram_virtual, tflops_requested, vram_requested,
                        tflops_limited, vram_limited),
            gpu_fits, candidates, request, node_cpu_free, node_memory_free, mix, query);
      },
      py::kw_only(), py::arg("node"), py::arg("state"), py::arg("pool"), py::arg("model"),
      py::arg("tflops_capacity"), py::arg("vram_capacity"), py::arg("tflops_virtual"),
      py::arg("vram_virtual"), py::arg("tflops_requested"), py::arg("vram_requested"),
      py::arg("tflops_limited"), py::arg("vram_limited"), py::arg("gpu_fits"),
      py::arg("candidates"), py::arg("request"), py::arg("pod_cpu"), py::arg("pod_memory"),
      py::arg("node_cpu_free"), py::arg("node_memory_free"), py::arg("shape_tflops_request"),
      py::arg("shape_tflops_limit"), py::arg("shape_percent_request_ppm"),
      py::arg("shape_percent_limit_ppm"), py::arg("shape_vram_request"),
      py::arg("shape_vram_limit"), py::arg("shape_model_id"), py::arg("class_shape"),
      py::arg("class_gpu_count"), py::arg("class_cpu"), py::arg("class_memory"),
      py::arg("class_weight"), py::arg("half_score_ppm"), py::arg("tie_divisor"),
      "FragmentationAware's score of each candidate node (int32 indices, strictly ascending) "
      "for placing `request` (a GpuFitRequest's fields; gpu_count 0 for a pod without GPUs) "
      "there, on the request.gpu_count GPUs where gpu_fits is 1 that add the least expected "
      "fragmentation over the mix (shape_* and class_* columns). Arrays are used in place "
      "(exact dtypes, 1-D, C-contiguous) and the call runs without the GIL. Returns (score "
      "int32[candidates], gpus int32[candidates, gpu_count]). TypeError for a wrong dtype, "
      "ValueError naming the argument for any other bad input.");

  m.def("broken_linear", &broken_linear, py::arg("requested"), py::arg("capacity"),
        py::arg("utilization"), py::arg("score"),
        "kube-scheduler's RequestedToCapacityRatio score per element: requested * 100 / "
        "capacity (100 when capacity is 0 or exceeded) through the piecewise-linear shape "
        "(utilization, score). All int64, 1-D, C-contiguous; runs without the GIL. TypeError "
        "for a wrong dtype, ValueError naming the argument for any other bad input.");
}

}  // namespace tf::bindings
