#include <pybind11/pybind11.h>

#include <string>

#include "registers.h"
#include "tf/log.h"

namespace py = pybind11;

namespace tf::bindings {
namespace {

log::Level parse_or_throw(const std::string& name) {
  if (const auto lvl = log::parse_level(name)) {
    return *lvl;
  }
  // py::repr quotes the name exactly as the Python side of tensorfusion does.
  throw py::value_error("invalid log level " + std::string(py::repr(py::str(name))) +
                        "; valid levels: " + std::string(log::kValidLevels));
}

}  // namespace

void register_log(py::module_& m) {
  m.def(
      "set_log_level",
      [](const std::string& name) { log::set_level(parse_or_throw(name)); }, py::arg("name"),
      "Set the native log level by name (case-insensitive; 'warning' means 'warn'). "
      "Raises ValueError for an unknown name.");

  m.def(
      "log_level", [] { return std::string(log::level_name(log::level())); },
      "The current native log level name.");

  m.def(
      "log",
      [](const std::string& level, const std::string& message) {
        const log::Level lvl = parse_or_throw(level);
        if (!log::enabled(lvl)) {
          return;
        }
        py::gil_scoped_release release;  // a blocked stderr must not stall other threads
        log::log(lvl, message);
      },
      py::arg("level"), py::arg("message"),
      "Write one line to stderr through the native logger if `level` is enabled.");

  m.def(
      "init_log_from_env", [] { return log::init_from_env(); },
      "Set the native level from TF_LOG_LEVEL. Returns '' on success, otherwise an error "
      "message (and the level is set to 'info').");
}

}  // namespace tf::bindings
