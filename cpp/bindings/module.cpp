// matchar._core: the table of contents of the binding surface.
// Each area lives in its own bind_<area>.cpp and only converts arrays, releases the
// GIL and calls the C++ kernel.
#include <pybind11/pybind11.h>

#include "matchar/common.hpp"

namespace py = pybind11;

void register_runtime(py::module_& m);
void register_gp(py::module_& m);
void register_imaging(py::module_& m);
void register_imaging_sim(py::module_& m);
void register_atoms(py::module_& m);
void register_nmr(py::module_& m);
void register_spectral(py::module_& m);
void register_spectral_physics(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "matchar's compiled core (C++17/OpenMP). Use the matchar package, not this module.";
  m.attr("__version__") = MATCHAR_VERSION_INFO;

  // C++ typed errors -> Python exceptions.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const matchar::InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const matchar::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const matchar::Interrupted&) {
      PyErr_SetNone(PyExc_KeyboardInterrupt);
    } catch (const matchar::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  register_runtime(m);

  auto gp = m.def_submodule("gp", "Gaussian-process kernels");
  register_gp(gp);

  auto imaging = m.def_submodule("imaging", "STEM image descriptors");
  register_imaging(imaging);
  register_imaging_sim(imaging);
  auto atoms = m.def_submodule("atoms", "Atomistic descriptors: SOAP");
  register_atoms(atoms);
  auto nmr = m.def_submodule("nmr", "NMR structure-determination kernels");
  register_nmr(nmr);
  auto spectral = m.def_submodule("spectral", "Spectrum-image decomposition kernels");
  register_spectral(spectral);
  register_spectral_physics(spectral);
}
