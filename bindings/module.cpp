#include <pybind11/pybind11.h>

#include "registers.h"

PYBIND11_MODULE(_native, m) {
  m.doc() = "tensor-fusion native core (C++). Import through the tensorfusion package.";
  tf::bindings::register_build_info(m);
  tf::bindings::register_limiter(m);
  tf::bindings::register_line_protocol(m);
  tf::bindings::register_log(m);
  tf::bindings::register_scoring(m);
  tf::bindings::register_shm(m);
}
