// Dtype dispatch and small array checks shared by the spectral bindings
// (bind_spectral.cpp, bind_spectral_physics.cpp). Header-only, bindings-internal.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "arrays.hpp"
#include "matchar/spectral/nmf.hpp"

namespace matchar::bindings {

namespace py = pybind11;
namespace sp = matchar::spectral;
using matchar::index_t;

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

}  // namespace matchar::bindings
