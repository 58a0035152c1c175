// The one conversion from NumPy arrays to matchar views, used by every binding.
// Zero-copy: the view points into the array's buffer with its own strides. The
// Python layer (matchar._arrays.as_array) has already settled dtype and alignment.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "matchar/common.hpp"

namespace matchar::bindings {

namespace py = pybind11;

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
