// The one conversion from NumPy arrays to matchar views, used by every binding.
// Zero-copy: the view points into the array's buffer with its own strides. The
// Python layer (matchar._arrays.as_array) has already settled dtype and alignment.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>

#include "matchar/common.hpp"

namespace matchar::bindings {

namespace py = pybind11;

// A type carried as a value: dispatch calls f(Tag<T>{}), f reads decltype(tag)::type.
template <class T>
struct Tag {
  using type = T;
};

// The one float32 / float64 dispatch of the bindings: calls f(Tag<float>{}) or
// f(Tag<double>{}) for the dtype dt; a TypeError naming `what` and the accepted dtypes
// for any other dtype (integers, complex, float16, ...). Nothing is converted or copied.
template <class F>
auto dispatch_on_dtype(const py::dtype& dt, const std::string& what, F&& f) {
  if (dt.equal(py::dtype::of<float>())) return f(Tag<float>{});
  if (dt.equal(py::dtype::of<double>())) return f(Tag<double>{});
  throw py::type_error(what + " must have dtype float32 or float64, got " +
                       std::string(py::str(dt)));
}

// On the dtype of the array argument `name` (the one whose dtype decides the kernel's).
template <class F>
auto dispatch_real(const py::array& a, const char* name, F&& f) {
  return dispatch_on_dtype(a.dtype(), name, std::forward<F>(f));
}

// On a `dtype` argument of a kernel that makes its output from no floating-point input:
// a NumPy dtype, a scalar type (numpy.float32) or a name ("float32", "float64").
template <class F>
auto dispatch_real_dtype(const py::object& dtype, F&& f) {
  const auto bad = [&] {
    return py::type_error("dtype must be float32 or float64 (a NumPy dtype or its name), got " +
                          std::string(py::repr(dtype)));
  };
  if (dtype.is_none()) throw bad();  // NumPy would read None as float64
  const py::dtype dt = [&] {
    try {
      return py::dtype::from_args(dtype);
    } catch (py::error_already_set&) {
      throw bad();
    }
  }();
  return dispatch_on_dtype(dt, "dtype", std::forward<F>(f));
}

// A writeable-or-not array of exactly dtype T, passed through without conversion (the
// dtype was dispatched on, or must match one that was): a TypeError otherwise.
template <class T>
py::array_t<T> same_dtype(const py::array& a, const char* name, const char* like) {
  if (!py::dtype::of<T>().equal(a.dtype()))
    throw py::type_error(std::string(name) + " must have the dtype of " + like + " (" +
                         std::string(py::str(py::dtype::of<T>())) + "), got " +
                         std::string(py::str(a.dtype())));
  return py::reinterpret_borrow<py::array_t<T>>(a);
}

template <class T>
ConstMatrixView<T> matrix_view(const py::array& a, const char* name) {
  if (a.ndim() != 2)
    throw py::value_error(std::string(name) + " must be a 2-D array, got " +
                          std::to_string(a.ndim()) + " dimension(s)");
  if (!py::dtype::of<T>().equal(a.dtype()))
    throw py::value_error(std::string(name) + " must have dtype " +
                          std::string(py::str(py::dtype::of<T>())) + ", got " +
                          std::string(py::str(a.dtype())));
  const auto item = static_cast<py::ssize_t>(sizeof(T));
  if (a.strides(0) % item != 0 || a.strides(1) % item != 0 ||
      (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T)) != 0)
    throw py::value_error(std::string(name) + " is not aligned to its element size");
  return ConstMatrixView<T>{static_cast<const T*>(a.data()), a.shape(0), a.shape(1),
                            a.strides(0) / item, a.strides(1) / item};
}

// Small parameter arrays (shifts, offsets, per-image parameters): C-contiguous T, converted
// by pybind11 when needed. pybind11 passes these flags on to NumPy's PyArray_FromAny, so
// NPY_ARRAY_ALIGNED (0x0100) makes it copy a buffer that does not start on a multiple of
// alignof(T): an array unpickled on a dask worker can start at any byte, and the kernels
// read these through T pointers.
constexpr int kNpyAligned = 0x0100;
template <class T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast | kNpyAligned>;

// A new C-contiguous (rows, cols) array, after checking that it fits in memory.
template <class T>
py::array_t<T> new_matrix(index_t rows, index_t cols, const char* what) {
  check_allocation(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols), sizeof(T),
                   what);
  return py::array_t<T>({rows, cols});
}

}  // namespace matchar::bindings
