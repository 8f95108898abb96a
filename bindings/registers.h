// One register_* function per native concept; module.cpp only calls them. Each one is a thin
// layer: argument conversion and Python-facing errors, no logic of its own.
#pragma once

#include <pybind11/pybind11.h>

namespace tf::bindings {

void register_build_info(pybind11::module_& m);
void register_limiter(pybind11::module_& m);
void register_line_protocol(pybind11::module_& m);
void register_log(pybind11::module_& m);
void register_scoring(pybind11::module_& m);
void register_shm(pybind11::module_& m);

}  // namespace tf::bindings
