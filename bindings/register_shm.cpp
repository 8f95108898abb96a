#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>

#include "registers.h"
#include "tf/shm.h"

namespace py = pybind11;

namespace tf::bindings {
namespace {

using shm::Counter;
using shm::Gauge;
using shm::Kind;
using shm::Membership;
using shm::Region;
using shm::RegionError;
using shm::Status;

constexpr std::array<Kind, shm::kKinds> kKinds = {Kind::device, Kind::managed, Kind::array,
                                                  Kind::vmm};
constexpr std::array<Counter, shm::kCounters> kCounters = {
    Counter::launches, Counter::throttled_launches, Counter::busy_ns, Counter::pages_evicted,
    Counter::pages_resumed};
constexpr std::array<Gauge, shm::kGauges> kGauges = {Gauge::host, Gauge::disk};

// Looks `name` up among `values` by their names; ValueError lists the valid ones.
template <typename T, std::size_t N>
T parse_name(const std::string& name, const std::array<T, N>& values, const char* (*name_of)(T),
             const char* argument) {
  std::string valid;
  for (const T value : values) {
    if (name == name_of(value)) {
      return value;
    }
    valid += (valid.empty() ? "" : ", ") + std::string(name_of(value));
  }
  throw py::value_error(std::string(argument) + ": unknown " + argument + " " +
                        std::string(py::repr(py::str(name))) + "; valid: " + valid);
}

bool is_int(const py::handle& value) {
  return PyLong_Check(value.ptr()) && !PyBool_Check(value.ptr());
}

std::uint64_t to_u64(const py::object& value, const char* argument) {
  if (!is_int(value)) {
    throw py::type_error(std::string(argument) + ": expected an int, got " +
                         std::string(py::str(py::type::of(value).attr("__name__"))));
  }
  const unsigned long long converted = PyLong_AsUnsignedLongLong(value.ptr());
  if (PyErr_Occurred() != nullptr) {
    PyErr_Clear();
    throw py::value_error(std::string(argument) + ": must be from 0 to 2**64 - 1, got " +
                          std::string(py::repr(value)));
  }
  return converted;
}

double to_double(const py::object& value, const char* argument) {
  if (!is_int(value) && !PyFloat_Check(value.ptr())) {
    throw py::type_error(std::string(argument) + ": expected a number, got " +
                         std::string(py::str(py::type::of(value).attr("__name__"))));
  }
  return value.cast<double>();
}

shm::Limits to_limits(const py::object& vram_limit, const py::object& tflops_limit,
                      const py::object& tflops_request, const py::object& gpu_peak_tflops,
                      const py::object& host_limit, const py::object& disk_limit) {
  return shm::Limits{to_u64(vram_limit, "vram_limit"),
                     to_double(tflops_limit, "tflops_limit"),
                     to_double(tflops_request, "tflops_request"),
                     to_double(gpu_peak_tflops, "gpu_peak_tflops"),
                     to_u64(host_limit, "host_limit"),
                     to_u64(disk_limit, "disk_limit")};
}

[[noreturn]] void raise_os(int error_number, const std::string& message, const std::string& path) {
  PyErr_SetObject(PyExc_OSError,
                  py::make_tuple(error_number, message, path).ptr());  // picks the subclass
  throw py::error_already_set();
}

// Non-ok statuses other than over_limit are caller mistakes or a broken region.
void raise_status(Status status, const Region& region, const char* kind = "") {
  switch (status) {
    case Status::ok:
    case Status::over_limit:
      return;
    case Status::stale:
      throw py::value_error("slot: no longer held (it was left or reaped)");
    case Status::over_credit:
      throw py::value_error(std::string("nbytes: more than the slot holds of kind ") + kind);
    case Status::full:
      raise_os(ENOSPC, "every slot is held by a live process", region.path());
    case Status::unrecoverable:
      throw py::value_error(region.path() + ": corrupt region (free list or mutex)");
  }
}

// The binding-side guard the shim gets from its atfork handler: a child must rejoin first.
const Membership& owned(const Membership& member) {
  if (!Region::owned_by_caller(member)) {
    throw py::value_error("slot: held by pid " + std::to_string(member.pid) +
                          ", not this process; call rejoin_after_fork in a forked child");
  }
  return member;
}

// try_charge or credit with converted arguments and the GIL released; raises for every status
// but ok and over_limit, which it returns.
Status bytes_call(Region& self, Status (Region::*op)(const Membership&, Kind, std::uint64_t),
                  const Membership& slot, const std::string& kind, const py::object& nbytes) {
  const Kind k = parse_name(kind, kKinds, shm::kind_name, "kind");
  const std::uint64_t n = to_u64(nbytes, "nbytes");
  const Membership& member = owned(slot);
  Status status = Status::ok;
  {
    py::gil_scoped_release release;
    status = (self.*op)(member, k, n);
  }
  raise_status(status, self, shm::kind_name(k));
  return status;
}

py::dict slot_dict(const shm::SlotView& view) {
  py::dict bytes;
  for (const Kind kind : kKinds) {
    bytes[shm::kind_name(kind)] = view.bytes[static_cast<std::size_t>(kind)];
  }
  py::dict out;
  out["index"] = view.index;
  out["pid"] = view.pid;
  out["start_token"] = view.start_token;
  out["bytes"] = bytes;
  for (const Counter counter : kCounters) {
    out[shm::counter_name(counter)] = view.counters[static_cast<std::size_t>(counter)];
  }
  for (const Gauge gauge : kGauges) {
    out[shm::gauge_name(gauge)] = view.gauges[static_cast<std::size_t>(gauge)];
  }
  return out;
}

py::dict snapshot_dict(const shm::Snapshot& snap) {
  py::list slots;
  for (const auto& view : snap.slots) {
    slots.append(slot_dict(view));
  }
  py::dict out;
  out["layout_version"] = snap.layout_version;
  out["slot_count"] = snap.slot_count;
  out["generation"] = snap.generation;
  out["worker"] = snap.worker;
  out["vram_limit"] = snap.limits.vram_bytes;
  out["tflops_limit"] = snap.limits.tflops_limit;
  out["tflops_request"] = snap.limits.tflops_request;
  out["gpu_peak_tflops"] = snap.limits.gpu_peak_tflops;
  out["host_limit"] = snap.limits.host_bytes;
  out["disk_limit"] = snap.limits.disk_bytes;
  out["total_bytes"] = snap.total_bytes;
  out["members"] = snap.members;
  out["slots"] = slots;
  return out;
}

// An opaque call the compiler cannot drop: the baseline the charge loop is measured against.
void (*volatile noop_target)() = [] {};

void check_iterations(std::int64_t iterations) {
  if (iterations < 0) {
    throw py::value_error("iterations: must be >= 0, got " + std::to_string(iterations));
  }
}

void register_slot(py::module_& m) {
  py::class_<Membership>(m, "ShmSlot",
                         "A process's claim on one slot of a ShmRegion (from join).")
      .def_property_readonly("index", [](const Membership& s) { return s.slot; })
      .def_property_readonly("pid", [](const Membership& s) { return s.pid; })
      .def_property_readonly("incarnation", [](const Membership& s) { return s.incarnation; })
      .def("__repr__", [](const Membership& s) {
        return "ShmSlot(index=" + std::to_string(s.slot) + ", pid=" + std::to_string(s.pid) +
               ")";
      });
}

void register_accounting(py::class_<Region>& region) {
  region
      .def(
          "join",
          [](Region& self) {
            Membership out;
            Status status = Status::ok;
            {
              py::gil_scoped_release release;
              status = self.join(out);
            }
            raise_status(status, self);
            return out;
          },
          "Claims a slot for this process.")
      .def(
          "leave",
          [](Region& self, const Membership& slot) {
            const Membership& member = owned(slot);
            Status status = Status::ok;
            {
              py::gil_scoped_release release;
              status = self.leave(member);
            }
            raise_status(status, self);
          },
          py::arg("slot"), "Returns the slot and every byte it holds.")
      .def(
          "rejoin_after_fork",
          [](Region& self, Membership slot) {
            Status status = Status::ok;
            {
              py::gil_scoped_release release;
              status = self.rejoin_after_fork(slot);
            }
            raise_status(status, self);
            return slot;
          },
          py::arg("slot"),
          "In a forked child: a slot of its own (the parent keeps `slot`). Else `slot`.")
      .def(
          "try_charge",
          [](Region& self, const Membership& slot, const std::string& kind,
             const py::object& nbytes) {
            return bytes_call(self, &Region::try_charge, slot, kind, nbytes) == Status::ok;
          },
          py::arg("slot"), py::arg("kind"), py::arg("nbytes"),
          "True if charged; False if the worker's total would exceed the VRAM limit.")
      .def(
          "credit",
          [](Region& self, const Membership& slot, const std::string& kind,
             const py::object& nbytes) { bytes_call(self, &Region::credit, slot, kind, nbytes); },
          py::arg("slot"), py::arg("kind"), py::arg("nbytes"))
      .def(
          "add",
          [](Region& self, const Membership& slot, const std::string& counter,
             const py::object& amount) {
            const Counter c = parse_name(counter, kCounters, shm::counter_name, "counter");
            raise_status(self.add(owned(slot), c, to_u64(amount, "amount")), self);
          },
          py::arg("slot"), py::arg("counter"), py::arg("amount"))
      .def(
          "set_gauge",
          [](Region& self, const Membership& slot, const std::string& gauge,
             const py::object& value) {
            const Gauge g = parse_name(gauge, kGauges, shm::gauge_name, "gauge");
            raise_status(self.set_gauge(owned(slot), g, to_u64(value, "value")), self);
          },
          py::arg("slot"), py::arg("gauge"), py::arg("value"))
      .def(
          "reap",
          [](Region& self) {
            py::gil_scoped_release release;
            return self.reap();
          },
          "Frees the slots of dead processes; returns how many.")
      .def(
          "charge_credit_loop",
          [](Region& self, const Membership& slot, std::int64_t iterations) {
            check_iterations(iterations);
            const Membership& member = owned(slot);
            Status status = Status::ok;
            {
              py::gil_scoped_release release;
              for (std::int64_t i = 0; i < iterations && status == Status::ok; ++i) {
                status = self.try_charge(member, Kind::device, 1);
                if (status == Status::ok) {
                  status = self.credit(member, Kind::device, 1);
                }
              }
            }
            raise_status(status, self);
            if (status == Status::over_limit) {
              throw py::value_error("vram_limit: 0 leaves nothing to charge");
            }
          },
          py::arg("slot"), py::arg("iterations"),
          "Bench helper: `iterations` x (try_charge 1 byte + credit it), GIL released.");
}

}  // namespace

void register_shm(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) {
        std::rethrow_exception(error);
      }
    } catch (const RegionError& e) {
      if (e.cause() == RegionError::Cause::os) {
        raise_os(e.error_number(), e.what(), e.path());
      }
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.attr("SHM_LAYOUT_VERSION") = shm::kLayoutVersion;
  py::list kinds;
  for (const Kind kind : kKinds) {
    kinds.append(shm::kind_name(kind));
  }
  m.attr("SHM_KINDS") = py::tuple(kinds);
  py::list counters;
  for (const Counter counter : kCounters) {
    counters.append(shm::counter_name(counter));
  }
  m.attr("SHM_COUNTERS") = py::tuple(counters);
  py::list gauges;
  for (const Gauge gauge : kGauges) {
    gauges.append(shm::gauge_name(gauge));
  }
  m.attr("SHM_GAUGES") = py::tuple(gauges);

  register_slot(m);
  py::class_<Region> region(m, "ShmRegion",
                            "The shared region of one worker on one GPU (see tf/shm.h).");
  region
      .def_static(
          "create",
          [](const std::filesystem::path& path, const py::object& slots, const std::string& worker,
             const py::object& vram_limit, const py::object& tflops_limit,
             const py::object& tflops_request, const py::object& gpu_peak_tflops,
             const py::object& host_limit, const py::object& disk_limit) {
            const std::uint64_t count = to_u64(slots, "slots");
            const shm::Limits limits = to_limits(vram_limit, tflops_limit, tflops_request,
                                                 gpu_peak_tflops, host_limit, disk_limit);
            return Region::create(path.string(), count, worker, limits);
          },
          py::arg("path"), py::kw_only(), py::arg("slots"), py::arg("worker"),
          py::arg("vram_limit"), py::arg("tflops_limit"), py::arg("tflops_request"),
          py::arg("gpu_peak_tflops"), py::arg("host_limit") = 0, py::arg("disk_limit") = 0)
      .def_static(
          "open", [](const std::filesystem::path& path) { return Region::open(path.string()); },
          py::arg("path"))
      .def_property_readonly("path", &Region::path)
      .def_property_readonly("slot_count", &Region::slot_count)
      .def(
          "set_limits",
          [](Region& self, const py::object& vram_limit, const py::object& tflops_limit,
             const py::object& tflops_request, const py::object& gpu_peak_tflops,
             const py::object& host_limit, const py::object& disk_limit) {
            const shm::Limits limits = to_limits(vram_limit, tflops_limit, tflops_request,
                                                 gpu_peak_tflops, host_limit, disk_limit);
            py::gil_scoped_release release;
            return self.set_limits(limits);
          },
          py::kw_only(), py::arg("vram_limit"), py::arg("tflops_limit"),
          py::arg("tflops_request"), py::arg("gpu_peak_tflops"), py::arg("host_limit") = 0,
          py::arg("disk_limit") = 0,
          "Replaces the limits; returns the new generation.")
      .def("snapshot", [](const Region& self) {
        shm::Snapshot snap;
        {
          py::gil_scoped_release release;
          snap = self.snapshot();
        }
        return snapshot_dict(snap);
      });
  register_accounting(region);

  m.def(
      "shm_noop_loop",
      [](std::int64_t iterations) {
        check_iterations(iterations);
        py::gil_scoped_release release;
        for (std::int64_t i = 0; i < iterations; ++i) {
          noop_target();
        }
      },
      py::arg("iterations"), "Bench baseline: `iterations` opaque no-op calls, GIL released.");
}

}  // namespace tf::bindings
