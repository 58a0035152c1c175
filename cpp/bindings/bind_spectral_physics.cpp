// matchar._core.spectral (PhysicsNMF part): the KL pass with a surrogate maps update.
// Thin: array views, GIL released, the kernel of cpp/src/spectral/physics.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>

#include "arrays.hpp"
#include "matchar/spectral/physics.hpp"
#include "spectral_dispatch.hpp"

namespace py = pybind11;
using namespace matchar::bindings;
using matchar::index_t;
namespace sp = matchar::spectral;

namespace {

sp::SurrogateMaps maps_of(const py::array& beta, index_t n, index_t k, double q, bool simplex,
                          int n_bisect) {
  if (beta.ndim() != 2 || beta.shape(0) != n || beta.shape(1) != k)
    throw py::value_error("beta must have shape (" + std::to_string(n) + ", " + std::to_string(k) +
                          ")");
  if (!py::dtype::of<double>().equal(beta.dtype()) || !(beta.flags() & py::array::c_style))
    throw py::value_error("beta must be a C-contiguous float64 array");
  sp::SurrogateMaps m;
  m.beta = static_cast<const double*>(beta.data());
  m.q = q;
  m.simplex = simplex;
  m.n_bisect = n_bisect;
  return m;
}

// (value, A_new, numerator, colsum) of one KL pass with the surrogate maps update, X dense
// or CSR: the checks of beta come before those of the masks.
template <class Counts>
py::tuple physics_kl_pass_of(const Counts& x, const py::array& A, const py::array& H,
                             const py::array& beta, double q, bool simplex,
                             const OptArray& pixel_mask, const OptArray& channel_mask,
                             bool with_loss, int n_bisect) {
  return with_factor_views(x, A, H, "A", [&](auto xv, auto av, auto hv) {
    const sp::SurrogateMaps maps = maps_of(beta, av.rows, av.cols, q, simplex, n_bisect);
    const sp::Masks masks = masks_of(pixel_mask, channel_mask, xv.rows, xv.cols);
    return kl_stats_result(av, hv, "A", [&](auto* ao, double* num, double* colsum) {
      return MATCHAR_SPECTRAL_KERNEL(kl_surrogate_pass)(xv, av, hv, maps, masks, with_loss, ao, num,
                                                        colsum);
    });
  });
}

py::tuple physics_kl_pass(const py::array& X, const py::array& A, const py::array& H,
                          const py::array& beta, double q, bool simplex, const OptArray& pixel_mask,
                          const OptArray& channel_mask, bool with_loss, int n_bisect) {
  return physics_kl_pass_of(DenseCounts{X}, A, H, beta, q, simplex, pixel_mask, channel_mask,
                            with_loss, n_bisect);
}

py::tuple physics_kl_pass_csr(const py::array& data, const py::array& indices,
                              const py::array& indptr, index_t n_cols, const py::array& A,
                              const py::array& H, const py::array& beta, double q, bool simplex,
                              const OptArray& pixel_mask, const OptArray& channel_mask,
                              bool with_loss, int n_bisect) {
  return physics_kl_pass_of(CsrCounts{data, indices, indptr, n_cols}, A, H, beta, q, simplex,
                            pixel_mask, channel_mask, with_loss, n_bisect);
}

}  // namespace

void register_spectral_physics(py::module_& m) {
  m.def("physics_kl_pass", &physics_kl_pass, py::arg("X"), py::arg("A"), py::arg("H"),
        py::arg("beta"), py::arg("q") = 0.0, py::arg("simplex") = false,
        py::arg("pixel_mask") = py::none(), py::arg("channel_mask") = py::none(),
        py::arg("with_loss") = true, py::arg("n_bisect") = 60);
  m.def("physics_kl_pass_csr", &physics_kl_pass_csr, py::arg("data"), py::arg("indices"),
        py::arg("indptr"), py::arg("n_cols"), py::arg("A"), py::arg("H"), py::arg("beta"),
        py::arg("q") = 0.0, py::arg("simplex") = false, py::arg("pixel_mask") = py::none(),
        py::arg("channel_mask") = py::none(), py::arg("with_loss") = true,
        py::arg("n_bisect") = 60);
}
