// Dtype dispatch, small array checks and the shape of an NMF-family binding (views of X
// and the factors, outputs, the kernel without the GIL), shared by the spectral bindings
// (bind_spectral.cpp, bind_spectral_physics.cpp). Header-only, bindings-internal.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "arrays.hpp"
#include "gil.hpp"
#include "matchar/spectral/nmf.hpp"

namespace matchar::bindings {

namespace py = pybind11;
namespace sp = matchar::spectral;
using matchar::index_t;
using OptArray = std::optional<py::array>;

// Calls f(Tag<TX>{}) for the dtype of the dense counts array X.
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

// Calls f(Tag<T>{}) for the dtype of a factor (float32 or float64), named in errors
// (a TypeError otherwise, as for every binding: arrays.hpp's dispatch_real).
template <class F>
auto dispatch_factor(const py::array& W, F&& f, const char* name = "W") {
  return dispatch_real(W, name, std::forward<F>(f));
}

template <class T>
const T* vector_ptr(const std::optional<py::array>& a, index_t n, const char* name) {
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

inline sp::Masks masks_of(const std::optional<py::array>& pixels,
                          const std::optional<py::array>& channels, index_t n, index_t c) {
  return sp::Masks{vector_ptr<std::uint8_t>(pixels, n, "pixel mask"),
                   vector_ptr<std::uint8_t>(channels, c, "channel mask")};
}

template <class TX, class TI>
sp::CsrView<TX, TI> csr_view(const py::array& data, const py::array& indices,
                             const py::array& indptr, index_t n_rows, index_t n_cols) {
  sp::CsrView<TX, TI> v;
  v.rows = n_rows;
  v.cols = n_cols;
  v.indptr = vector_ptr<TI>(indptr, n_rows + 1, "indptr");
  const auto nnz = static_cast<index_t>(v.indptr[n_rows]);
  v.data = vector_ptr<TX>(data, nnz, "data");
  v.indices = vector_ptr<TI>(indices, nnz, "indices");
  return v;
}

template <class F>
auto dispatch_csr(const py::array& data, const py::array& indices, F&& f) {
  const bool f32 = data.dtype().equal(py::dtype::of<float>());
  const bool f64 = data.dtype().equal(py::dtype::of<double>());
  const bool i32 = indices.dtype().equal(py::dtype::of<std::int32_t>());
  const bool i64 = indices.dtype().equal(py::dtype::of<std::int64_t>());
  if (f32 && i32) return f(Tag<float>{}, Tag<std::int32_t>{});
  if (f32 && i64) return f(Tag<float>{}, Tag<std::int64_t>{});
  if (f64 && i32) return f(Tag<double>{}, Tag<std::int32_t>{});
  if (f64 && i64) return f(Tag<double>{}, Tag<std::int64_t>{});
  throw py::value_error("sparse X must have float32/float64 data and int32/int64 indices");
}

// ---------------------------------------------------------------------------
// The NMF-family bindings: X dense or CSR, factors W (or A) and H of one dtype T.
// ---------------------------------------------------------------------------

// The counts X as passed from Python: a dense array (read in place), or the arrays of a
// CSR matrix whose rows are the factor's.
struct DenseCounts {
  const py::array& X;
};
struct CsrCounts {
  const py::array& data;
  const py::array& indices;
  const py::array& indptr;
  index_t n_cols;
};

// The element type T of a factor view ConstMatrixView<T>.
template <class View>
using element_t = std::remove_const_t<std::remove_pointer_t<decltype(std::decay_t<View>::data)>>;

// Dispatches on the dtypes of X and of the factor W (named w_name), makes the views and
// returns f(xv, wv) (dense X only): X's dtype, W's dtype, then the views of X and W.
template <class F>
auto with_factor_views(const DenseCounts& x, const py::array& W, const char* w_name, F&& f) {
  return dispatch_counts(x.X, [&](auto tx) {
    using TX = typename decltype(tx)::type;
    return dispatch_factor(
        W,
        [&](auto tf) {
          using T = typename decltype(tf)::type;
          const auto xv = matrix_view<TX>(x.X, "X");
          const auto wv = matrix_view<T>(W, w_name);
          return f(xv, wv);
        },
        w_name);
  });
}

// The same with the second factor H: f(xv, wv, hv), xv a ConstMatrixView<TX>.
template <class F>
auto with_factor_views(const DenseCounts& x, const py::array& W, const py::array& H,
                       const char* w_name, F&& f) {
  return with_factor_views(x, W, w_name, [&](auto xv, auto wv) {
    const auto hv = matrix_view<element_t<decltype(wv)>>(H, "H");
    return f(xv, wv, hv);
  });
}

// For CSR X: f(xv, wv, hv), xv a CsrView<TX, TI> of W's rows: the dtypes of data and
// indices, W's dtype, the views of W and H, then the CSR arrays.
template <class F>
auto with_factor_views(const CsrCounts& x, const py::array& W, const py::array& H,
                       const char* w_name, F&& f) {
  return dispatch_csr(x.data, x.indices, [&](auto tx, auto ti) {
    using TX = typename decltype(tx)::type;
    using TI = typename decltype(ti)::type;
    return dispatch_factor(
        W,
        [&](auto tf) {
          using T = typename decltype(tf)::type;
          const auto wv = matrix_view<T>(W, w_name);
          const auto hv = matrix_view<T>(H, "H");
          const auto xv = csr_view<TX, TI>(x.data, x.indices, x.indptr, wv.rows, x.n_cols);
          return f(xv, wv, hv);
        },
        w_name);
  });
}

// Whether a view of X is CSR (else dense).
template <class View>
struct is_csr : std::false_type {};
template <class TX, class TI>
struct is_csr<sp::CsrView<TX, TI>> : std::true_type {};

// A generic callable running sp::kernel(xv, args...) for dense xv and sp::kernel_csr(xv,
// args...) for CSR xv, the template arguments deduced from the views and output pointers.
#define MATCHAR_SPECTRAL_KERNEL(kernel)                                                       \
  [](const auto& xv_, auto&&... args_) {                                                      \
    if constexpr (::matchar::bindings::is_csr<std::decay_t<decltype(xv_)>>::value)            \
      return ::matchar::spectral::kernel##_csr(xv_, std::forward<decltype(args_)>(args_)...); \
    else                                                                                      \
      return ::matchar::spectral::kernel(xv_, std::forward<decltype(args_)>(args_)...);       \
  }

// A new array and the pointer the kernel writes through, taken while the GIL is held.
template <class T>
struct Output {
  py::array_t<T> array;
  T* ptr;
};

// A C-contiguous (rows, cols) output, after checking that it fits in memory.
template <class T>
Output<T> output_matrix(index_t rows, index_t cols, const char* what) {
  auto a = new_matrix<T>(rows, cols, what);
  T* p = a.mutable_data();
  return {std::move(a), p};
}

template <class T>
Output<T> output_vector(index_t n) {
  py::array_t<T> a(n);
  T* p = a.mutable_data();
  return {std::move(a), p};
}

// f() with the GIL released (the kernels take no Python objects).
template <class F>
auto without_gil(F&& f) {
  matchar_py::ReleaseGil release;
  return f();
}

// (value, W_new, numerator (K x C float64), colsum (K float64)) of a KL pass that leaves
// the H update to the caller: value = kernel(W_out, numerator, colsum), without the GIL.
template <class T, class Kernel>
py::tuple kl_stats_result(ConstMatrixView<T> wv, ConstMatrixView<T> hv, const char* w_name,
                          Kernel&& kernel) {
  const auto W_out = output_matrix<T>(wv.rows, wv.cols, w_name);
  const auto num = output_matrix<double>(hv.rows, hv.cols, "numerator");
  const auto colsum = output_vector<double>(hv.rows);
  const double value = without_gil([&] { return kernel(W_out.ptr, num.ptr, colsum.ptr); });
  return py::tuple(py::make_tuple(value, W_out.array, num.array, colsum.array));
}

}  // namespace matchar::bindings
