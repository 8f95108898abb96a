#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "registers.h"
#include "tf/limiter.h"

namespace py = pybind11;

namespace tf::bindings {
namespace {

using limiter::CostEstimator;
using limiter::InputError;
using limiter::Limiter;
using limiter::LimiterConfig;

void raise_if(const std::optional<InputError>& error) {
  if (error) {
    throw py::value_error(error->argument + ": " + error->message);
  }
}

// Checked here rather than in the core: the shim passes the monotonic clock and measured
// times, which cannot be negative, and its hot path should not pay for the check.
void check_not_negative(const char* argument, std::int64_t value) {
  if (value < 0) {
    throw py::value_error(std::string(argument) + ": must be >= 0, got " +
                          std::to_string(value));
  }
}

void check_launch(std::int64_t now_ns, std::int64_t cost_ns) {
  check_not_negative("now_ns", now_ns);
  check_not_negative("cost_ns", cost_ns);
}

Limiter make_limiter(double share, std::int64_t window_ns, std::int64_t max_in_flight_ns,
                     std::int64_t max_wait_ns) {
  const LimiterConfig config{share, window_ns, max_in_flight_ns, max_wait_ns};
  raise_if(limiter::validate(config));
  return Limiter(config);
}

}  // namespace

void register_limiter(py::module_& m) {
  const LimiterConfig defaults;
  py::class_<Limiter>(m, "Limiter",
                      "Token bucket over GPU busy time that paces one workload's launches "
                      "(see cpp/include/tf/limiter.h).")
      .def(py::init([](double share, std::int64_t window_ns, std::int64_t max_in_flight_ns,
                       std::int64_t max_wait_ns) {
             return new Limiter(make_limiter(share, window_ns, max_in_flight_ns, max_wait_ns));
           }),
           py::arg("share"), py::arg("window_ns") = defaults.window_ns,
           py::arg("max_in_flight_ns") = defaults.max_in_flight_ns,
           py::arg("max_wait_ns") = defaults.max_wait_ns)
      .def(
          "admit",
          [](Limiter& self, std::int64_t now_ns, std::int64_t cost_ns) {
            check_launch(now_ns, cost_ns);
            return self.admit(now_ns, cost_ns);
          },
          py::arg("now_ns"), py::arg("cost_ns"),
          "Wait in ns before the launch may go; 0 = go now (and the cost is charged).")
      .def(
          "complete",
          [](Limiter& self, std::int64_t now_ns, std::int64_t busy_ns) {
            check_not_negative("now_ns", now_ns);
            check_not_negative("busy_ns", busy_ns);
            self.complete(now_ns, busy_ns);
          },
          py::arg("now_ns"), py::arg("busy_ns"),
          "The oldest admitted launch finished after busy_ns of GPU time.")
      .def(
          "noop",
          [](const Limiter&, std::int64_t now_ns, std::int64_t cost_ns) {
            check_launch(now_ns, cost_ns);
            return std::int64_t{0};
          },
          py::arg("now_ns"), py::arg("cost_ns"),
          "admit's argument handling without the limiter: the binding's own per-call cost.")
      .def(
          "grant",
          [](Limiter& self, std::int64_t now_ns, std::int64_t most_ns) {
            check_not_negative("now_ns", now_ns);
            check_not_negative("most_ns", most_ns);
            return self.grant(now_ns, most_ns);
          },
          py::arg("now_ns"), py::arg("most_ns"),
          "Busy time launches may spend without admit(), taken from the bucket now: the tokens "
          "above a quarter of the burst allowance, at most most_ns.")
      .def(
          "refund",
          [](Limiter& self, std::int64_t now_ns, std::int64_t unspent_ns) {
            check_not_negative("now_ns", now_ns);
            check_not_negative("unspent_ns", unspent_ns);
            self.refund(now_ns, unspent_ns);
          },
          py::arg("now_ns"), py::arg("unspent_ns"),
          "Gives the unspent part of a grant back (up to the bucket's capacity).")
      .def("set_share", [](Limiter& self, double share) { raise_if(self.set_share(share)); },
           py::arg("share"), "Move the rate; ValueError (and no change) unless 0 < share <= 1.")
      .def_property_readonly("share", &Limiter::share)
      .def_property_readonly("in_flight_ns", &Limiter::in_flight_ns)
      .def_property_readonly("tokens_ns", &Limiter::tokens_ns)
      .def(
          "counters",
          [](const Limiter& self) {
            const limiter::Counters c = self.counters();
            return std::map<std::string, std::uint64_t>{{"launches", c.launches},
                                                        {"throttled", c.throttled},
                                                        {"wait_ns", c.wait_ns},
                                                        {"busy_ns", c.busy_ns}};
          },
          "launches, throttled (launches told to wait at least once), wait_ns, busy_ns.");

  py::class_<CostEstimator>(m, "CostEstimator",
                            "Per launch-site exponential average of measured busy time.")
      .def(py::init([](std::int64_t slots, double weight) {
             raise_if(limiter::check_estimator(slots, weight));
             return new CostEstimator(static_cast<std::uint32_t>(slots), weight);
           }),
           py::arg("slots") = 1024, py::arg("weight") = 0.25)
      .def(py::init([](std::int64_t slots, double rise_weight, double fall_weight) {
             raise_if(limiter::check_estimator(slots, rise_weight, fall_weight));
             return new CostEstimator(static_cast<std::uint32_t>(slots), rise_weight,
                                      fall_weight);
           }),
           py::arg("slots") = 1024, py::kw_only(), py::arg("rise_weight"),
           py::arg("fall_weight"),
           "Measurements above the average weigh rise_weight, those below fall_weight.")
      .def("estimate", &CostEstimator::estimate, py::arg("site"), py::arg("fallback_ns"))
      .def(
          "observe",
          [](CostEstimator& self, std::uint64_t site, std::int64_t busy_ns) {
            check_not_negative("busy_ns", busy_ns);
            self.observe(site, busy_ns);
          },
          py::arg("site"), py::arg("busy_ns"));

  m.def(
      "limiter_admit_loop",
      [](Limiter& limiter, std::int64_t calls, std::int64_t start_ns, std::int64_t step_ns,
         std::int64_t cost_ns) {
        check_not_negative("calls", calls);
        check_not_negative("start_ns", start_ns);
        check_not_negative("step_ns", step_ns);
        check_not_negative("cost_ns", cost_ns);
        std::int64_t admitted = 0;
        std::int64_t now = start_ns;
        for (std::int64_t i = 0; i < calls; ++i, now += step_ns) {
          if (limiter.admit(now, cost_ns) == 0) {
            limiter.complete(now, cost_ns);  // keeps the in-flight bound out of the way
            ++admitted;
          }
        }
        return admitted;
      },
      py::arg("limiter"), py::arg("calls"), py::arg("start_ns"), py::arg("step_ns"),
      py::arg("cost_ns"),
      "Bench helper: `calls` admit calls in a C++ loop, the clock stepping step_ns per call, "
      "each admitted launch completing at once. Returns the launches admitted.");
}

}  // namespace tf::bindings
