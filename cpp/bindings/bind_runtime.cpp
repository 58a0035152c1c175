// Threads, interruption and build information.
#include <pybind11/pybind11.h>

#include <cstddef>
#include <string>

#include "gil.hpp"
#include "matchar/common.hpp"

namespace py = pybind11;

void register_runtime(py::module_& m) {
  // Kernels poll this from the thread that called them, with the GIL released:
  // Ctrl-C sets Python's signal flag and PyErr_CheckSignals raises KeyboardInterrupt.
  // Once the interpreter exits, taking the GIL would end the thread mid-kernel (see
  // gil.hpp): the kernel is asked to stop instead.
  matchar::set_interrupt_handler([]() {
    // the kernel's thread released the GIL (ReleaseGil): take it back for the check only
    matchar_py::acquiring().fetch_add(1, std::memory_order_seq_cst);
    if (matchar_py::finalizing()) {
      matchar_py::acquiring().fetch_sub(1, std::memory_order_seq_cst);
      return true;
    }
    const PyGILState_STATE g = PyGILState_Ensure();
    matchar_py::acquiring().fetch_sub(1, std::memory_order_seq_cst);
    const bool interrupted = PyErr_CheckSignals() != 0;
    PyGILState_Release(g);
    return interrupted;
  });
  py::module_::import("atexit").attr("register")(
      py::cpp_function([]() { matchar_py::begin_exit(); }));

  m.def("get_num_threads", &matchar::num_threads,
        "Number of OpenMP threads the kernels use (OpenMP's max-threads setting).");
  m.def("set_num_threads", &matchar::set_num_threads, py::arg("n"),
        "Set the number of OpenMP threads the kernels use (1 <= n <= max_num_threads()).");
  m.def("max_num_threads", &matchar::max_num_threads,
        "The largest thread count set_num_threads accepts: 4 per processor available.");
  m.def(
      "check_allocation",
      [](std::size_t n_elements, std::size_t element_size, const std::string& what) {
        matchar::check_allocation(n_elements, element_size, what.c_str());
      },
      py::arg("n_elements"), py::arg("element_size"), py::arg("what"),
      "Raise MemoryError if n_elements * element_size bytes exceed what this process may "
      "allocate (address-space limit, cgroup memory limit, physical memory).");
  m.def("parallel_team_size", &matchar::parallel_team_size,
        "Threads a kernel's parallel region gets right now (a diagnostic for tests).");
  m.def(
      "_set_cpu_level", [](const std::string& level) { matchar::set_cpu_level(level); },
      py::arg("level"),
      "Force the level of the dispatched kernels ('' = back to the CPU's best or "
      "MATCHAR_CPU_LEVEL); for tests and benchmarks.");
  m.def(
      "build_info",
      []() {
        const auto info = matchar::build_info();
        py::dict d;
        d["avx2"] = info.avx2;
        d["fma"] = info.fma;
        d["avx512f"] = info.avx512f;
        d["openmp"] = info.openmp;
        d["cpu_level"] = info.cpu_level;
        py::list levels, supported;
        for (const std::string& l : info.cpu_levels) levels.append(l);
        for (const std::string& l : info.cpu_levels_supported) supported.append(l);
        d["cpu_levels"] = levels;
        d["cpu_levels_supported"] = supported;
        return d;
      },
      "What libmatchar was compiled for: vector instructions, the OpenMP version, the "
      "instruction-set level of the dispatched kernels (cpu_level: chosen at first use, "
      "or forced by MATCHAR_CPU_LEVEL), the levels compiled in (cpu_levels) and those this "
      "CPU runs (cpu_levels_supported).");
}
