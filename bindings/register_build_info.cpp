#include <pybind11/pybind11.h>

#include "registers.h"
#include "tf/build_info.h"

namespace py = pybind11;

namespace tf::bindings {

void register_build_info(py::module_& m) {
  m.def(
      "build_info",
      [] {
        const BuildInfo& info = tf::build_info();
        py::dict d;
        d["version"] = py::str(info.version.data(), info.version.size());
        d["compiler_id"] = py::str(info.compiler_id.data(), info.compiler_id.size());
        d["compiler_version"] =
            py::str(info.compiler_version.data(), info.compiler_version.size());
        d["cxx_standard"] = py::str(info.cxx_standard.data(), info.cxx_standard.size());
        d["build_type"] = py::str(info.build_type.data(), info.build_type.size());
        d["werror"] = py::bool_(info.werror);
        return d;
      },
      "How the native core was built: version, compiler_id, compiler_version, cxx_standard, "
      "build_type (str) and werror (bool).");
}

}  // namespace tf::bindings
