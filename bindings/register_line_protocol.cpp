#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <Python.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "registers.h"
#include "tf/line_protocol.h"

namespace py = pybind11;

namespace tf::bindings {
namespace {

[[noreturn]] void raise_config_error(const std::string& field, const std::string& message) {
  const py::object error =
      py::module_::import("tensorfusion.errors").attr("ConfigError")(field, message);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
  throw py::error_already_set();
}

// UTF-8 views of a list of str; the list keeps the strings (and so the views) alive.
std::vector<std::string_view> utf8_views(const py::list& values, const std::string& field) {
  std::vector<std::string_view> views;
  views.reserve(values.size());
  for (std::size_t row = 0; row < values.size(); ++row) {
    PyObject* item = PyList_GET_ITEM(values.ptr(), static_cast<py::ssize_t>(row));
    const auto cell = [&] { return field + "[" + std::to_string(row) + "]"; };
    if (!PyUnicode_CheckExact(item)) {
      raise_config_error(cell(), std::string("must be a str, got ") + Py_TYPE(item)->tp_name);
    }
    py::ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(item, &size);
    if (data == nullptr) {
      PyErr_Clear();
      raise_config_error(cell(), "is not valid Unicode text");
    }
    views.emplace_back(data, static_cast<std::size_t>(size));
  }
  return views;
}

template <typename T>
const void* numbers(const py::object& values) {
  return py::cast<py::array_t<T, py::array::c_style>>(values).data();
}

// Arguments come from tensorfusion.metrics.line_protocol.encode_columns, which has checked
// the names, the lengths and the dtypes; what is left to check is per cell.
py::str encode_columns(const std::string& measurement, const py::list& tag_columns,
                       const py::list& field_columns, const py::array_t<std::int64_t>& times,
                       std::int64_t unit_ns) {
  const auto rows = static_cast<std::size_t>(times.size());
  std::deque<std::vector<std::string_view>> strings;  // deque: pointers into it stay valid
  std::vector<metrics::TagColumn> tags;
  std::vector<py::object> keys;  // the Python keys, to name a bad cell
  for (const auto& entry : tag_columns) {
    const auto pair = entry.cast<py::tuple>();
    const auto key = pair[0].cast<std::string>();
    const std::string field = measurement + ".tags[" + std::string(py::repr(pair[0])) + "]";
    strings.push_back(utf8_views(pair[1].cast<py::list>(), field));
    tags.push_back({key, strings.back().data()});
  }
  std::vector<metrics::FieldColumn> fields;
  std::vector<py::object> arrays;  // keep numpy conversions alive while formatting
  for (const auto& entry : field_columns) {
    const auto triple = entry.cast<py::tuple>();
    const auto kind = static_cast<metrics::FieldKind>(triple[1].cast<std::string>().at(0));
    const void* values = nullptr;
    switch (kind) {
      case metrics::FieldKind::Float: values = numbers<double>(triple[2]); break;
      case metrics::FieldKind::Int: values = numbers<std::int64_t>(triple[2]); break;
      case metrics::FieldKind::Unsigned: values = numbers<std::uint64_t>(triple[2]); break;
      case metrics::FieldKind::Bool: values = numbers<bool>(triple[2]); break;
      case metrics::FieldKind::String: {
        const std::string field =
            measurement + ".fields[" + std::string(py::repr(triple[0])) + "]";
        strings.push_back(utf8_views(triple[2].cast<py::list>(), field));
        values = strings.back().data();
        break;
      }
    }
    arrays.push_back(triple[2]);
    fields.push_back({triple[0].cast<std::string>(), kind, values});
  }
  std::string out;
  std::optional<metrics::CellError> error;
  {
    py::gil_scoped_release release;
    error = metrics::encode_columns(measurement, std::move(tags), fields, times.data(), rows,
                                    unit_ns, out);
  }
  if (error) {
    const std::string row = "[" + std::to_string(error->row) + "]";
    switch (error->where) {
      case metrics::CellError::Where::Tag: {
        const auto key = py::repr(tag_columns[error->column].cast<py::tuple>()[0]);
        raise_config_error(measurement + ".tags[" + std::string(key) + "]" + row,
                           error->message);
      }
      case metrics::CellError::Where::Field: {
        const auto key = py::repr(field_columns[error->column].cast<py::tuple>()[0]);
        raise_config_error(measurement + ".fields[" + std::string(key) + "]" + row,
                           error->message);
      }
      case metrics::CellError::Where::Time:
        raise_config_error(measurement + ".time_ns" + row, error->message);
    }
  }
  return py::str(out.data(), out.size());
}

}  // namespace

void register_line_protocol(py::module_& m) {
  m.def("encode_columns", &encode_columns, py::arg("measurement"), py::arg("tag_columns"),
        py::arg("field_columns"), py::arg("times_ns"), py::arg("unit_ns"),
        "Influx line protocol for a batch of rows given as columns (one line per row).");
}

}  // namespace tf::bindings
