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

py::tuple physics_kl_pass(const py::array& X, const py::array& A, const py::array& H,
                          const py::array& beta, double q, bool simplex,
                          const std::optional<py::array>& pixel_mask,
                          const std::optional<py::array>& channel_mask, bool with_loss,
                          int n_bisect) {
  return dispatch_counts(X, [&](auto tx) {
    using TX = typename decltype(tx)::type;
    return dispatch_factor(
        A,
        [&](auto tf) {
          using T = typename decltype(tf)::type;
          const auto xv = matrix_view<TX>(X, "X");
          const auto av = matrix_view<T>(A, "A");
          const auto hv = matrix_view<T>(H, "H");
          const sp::SurrogateMaps m = maps_of(beta, av.rows, av.cols, q, simplex, n_bisect);
          const sp::Masks masks = masks_of(pixel_mask, channel_mask, xv.rows, xv.cols);
          auto A_out = new_matrix<T>(av.rows, av.cols, "A");
          auto num = new_matrix<double>(hv.rows, hv.cols, "numerator");
          py::array_t<double> colsum(hv.rows);
          T* ao = A_out.mutable_data();
          double* np_ = num.mutable_data();
          double* cs = colsum.mutable_data();
          double value;
          {
            py::gil_scoped_release release;
            value = sp::kl_surrogate_pass<TX, T>(xv, av, hv, m, masks, with_loss, ao, np_, cs);
          }
          return py::tuple(py::make_tuple(value, A_out, num, colsum));
        },
        "A");
  });
}

py::tuple physics_kl_pass_csr(const py::array& data, const py::array& indices,
                              const py::array& indptr, index_t n_cols, const py::array& A,
                              const py::array& H, const py::array& beta, double q, bool simplex,
                              const std::optional<py::array>& pixel_mask,
                              const std::optional<py::array>& channel_mask, bool with_loss,
                              int n_bisect) {
  auto run = [&](auto tx, auto ti) {
    using TX = typename decltype(tx)::type;
    using TI = typename decltype(ti)::type;
    return dispatch_factor(
        A,
        [&](auto tf) {
          using T = typename decltype(tf)::type;
          const auto av = matrix_view<T>(A, "A");
          const auto hv = matrix_view<T>(H, "H");
          const auto xv = csr_view<TX, TI>(data, indices, indptr, av.rows, n_cols);
          const sp::SurrogateMaps m = maps_of(beta, av.rows, av.cols, q, simplex, n_bisect);
          const sp::Masks masks = masks_of(pixel_mask, channel_mask, av.rows, n_cols);
          auto A_out = new_matrix<T>(av.rows, av.cols, "A");
          auto num = new_matrix<double>(hv.rows, hv.cols, "numerator");
          py::array_t<double> colsum(hv.rows);
          T* ao = A_out.mutable_data();
          double* np_ = num.mutable_data();
          double* cs = colsum.mutable_data();
          double value;
          {
            py::gil_scoped_release release;
            value =
                sp::kl_surrogate_pass_csr<TX, TI, T>(xv, av, hv, m, masks, with_loss, ao, np_, cs);
          }
          return py::tuple(py::make_tuple(value, A_out, num, colsum));
        },
        "A");
  };
  return dispatch_csr(data, indices, run);
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
