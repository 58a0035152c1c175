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

namespace py = pybind11;
using namespace matchar::bindings;
using matchar::index_t;
namespace sp = matchar::spectral;

namespace {

template <class T>
struct Tag {
  using type = T;
};

template <class T>
const T* vec_ptr(const std::optional<py::array>& a, index_t n, const char* name) {
  if (!a) return nullptr;
  if (a->ndim() != 1 || a->shape(0) != n)
    throw py::value_error(std::string(name) + " must be 1-D of length " + std::to_string(n));
  if (!py::dtype::of<T>().equal(a->dtype()))
    throw py::value_error(std::string(name) + " must have dtype " +
                          std::string(py::str(py::dtype::of<T>())));
  if (!(a->flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be contiguous");
  return static_cast<const T*>(a->data());
}

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

template <class F>
auto dispatch_counts(const py::array& X, F&& f) {
  const py::dtype dt = X.dtype();
  if (dt.equal(py::dtype::of<std::uint8_t>())) return f(Tag<std::uint8_t>{});
  if (dt.equal(py::dtype::of<std::uint16_t>())) return f(Tag<std::uint16_t>{});
  if (dt.equal(py::dtype::of<std::uint32_t>())) return f(Tag<std::uint32_t>{});
  if (dt.equal(py::dtype::of<float>())) return f(Tag<float>{});
  if (dt.equal(py::dtype::of<double>())) return f(Tag<double>{});
  throw py::value_error("X must have dtype uint8, uint16, uint32, float32 or float64, got " +
                        std::string(py::str(dt)));
}

template <class F>
auto dispatch_factor(const py::array& A, F&& f) {
  if (A.dtype().equal(py::dtype::of<float>())) return f(Tag<float>{});
  if (A.dtype().equal(py::dtype::of<double>())) return f(Tag<double>{});
  throw py::value_error("A must have dtype float32 or float64, got " +
                        std::string(py::str(A.dtype())));
}

py::tuple physics_kl_pass(const py::array& X, const py::array& A, const py::array& H,
                          const py::array& beta, double q, bool simplex,
                          const std::optional<py::array>& pixel_mask,
                          const std::optional<py::array>& channel_mask, bool with_loss,
                          int n_bisect) {
  return dispatch_counts(X, [&](auto tx) {
    using TX = typename decltype(tx)::type;
    return dispatch_factor(A, [&](auto tf) {
      using T = typename decltype(tf)::type;
      const auto xv = matrix_view<TX>(X, "X");
      const auto av = matrix_view<T>(A, "A");
      const auto hv = matrix_view<T>(H, "H");
      const sp::SurrogateMaps m = maps_of(beta, av.rows, av.cols, q, simplex, n_bisect);
      const sp::Masks masks{vec_ptr<std::uint8_t>(pixel_mask, xv.rows, "pixel mask"),
                            vec_ptr<std::uint8_t>(channel_mask, xv.cols, "channel mask")};
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
    });
  });
}

py::tuple physics_kl_pass_csr(const py::array& data, const py::array& indices,
                              const py::array& indptr, index_t n_cols, const py::array& A,
                              const py::array& H, const py::array& beta, double q, bool simplex,
                              const std::optional<py::array>& pixel_mask,
                              const std::optional<py::array>& channel_mask, bool with_loss,
                              int n_bisect) {
  const bool f32 = data.dtype().equal(py::dtype::of<float>());
  const bool f64 = data.dtype().equal(py::dtype::of<double>());
  const bool i32 = indices.dtype().equal(py::dtype::of<std::int32_t>());
  const bool i64 = indices.dtype().equal(py::dtype::of<std::int64_t>());
  if (!(f32 || f64) || !(i32 || i64))
    throw py::value_error("sparse X must have float32/float64 data and int32/int64 indices");
  auto run = [&](auto tx, auto ti) {
    using TX = typename decltype(tx)::type;
    using TI = typename decltype(ti)::type;
    return dispatch_factor(A, [&](auto tf) {
      using T = typename decltype(tf)::type;
      const auto av = matrix_view<T>(A, "A");
      const auto hv = matrix_view<T>(H, "H");
      sp::CsrView<TX, TI> xv;
      xv.rows = av.rows;
      xv.cols = n_cols;
      xv.indptr = vec_ptr<TI>(indptr, av.rows + 1, "indptr");
      const auto nnz = static_cast<index_t>(xv.indptr[av.rows]);
      xv.data = vec_ptr<TX>(data, nnz, "data");
      xv.indices = vec_ptr<TI>(indices, nnz, "indices");
      const sp::SurrogateMaps m = maps_of(beta, av.rows, av.cols, q, simplex, n_bisect);
      const sp::Masks masks{vec_ptr<std::uint8_t>(pixel_mask, av.rows, "pixel mask"),
                            vec_ptr<std::uint8_t>(channel_mask, n_cols, "channel mask")};
      auto A_out = new_matrix<T>(av.rows, av.cols, "A");
      auto num = new_matrix<double>(hv.rows, hv.cols, "numerator");
      py::array_t<double> colsum(hv.rows);
      T* ao = A_out.mutable_data();
      double* np_ = num.mutable_data();
      double* cs = colsum.mutable_data();
      double value;
      {
        py::gil_scoped_release release;
        value = sp::kl_surrogate_pass_csr<TX, TI, T>(xv, av, hv, m, masks, with_loss, ao, np_, cs);
      }
      return py::tuple(py::make_tuple(value, A_out, num, colsum));
    });
  };
  if (f32 && i32) return run(Tag<float>{}, Tag<std::int32_t>{});
  if (f32 && i64) return run(Tag<float>{}, Tag<std::int64_t>{});
  if (f64 && i32) return run(Tag<double>{}, Tag<std::int32_t>{});
  return run(Tag<double>{}, Tag<std::int64_t>{});
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
