// matchar._core.gp: Gaussian-process kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "arrays.hpp"
#include "gil.hpp"
#include "matchar/gp/kernels.hpp"

namespace py = pybind11;
using namespace matchar::bindings;

namespace {

// Y = None: the Gram matrix K(X, X), computed with its symmetry. X's dtype (float32 or
// float64) picks the kernel; Y must have the same.
template <class T>
py::array_t<T> polynomial_kernel_t(const py::array& X, const py::object& Y, int zeta,
                                   bool normalize) {
  const auto xv = matrix_view<T>(X, "X");
  if (Y.is_none()) {
    auto out = new_matrix<T>(xv.rows, xv.rows, "polynomial_kernel output");
    T* o = out.mutable_data();
    matchar_py::ReleaseGil release;
    matchar::gp::polynomial_kernel<T>(xv, zeta, normalize, o);
    return out;
  }
  const auto yv = matrix_view<T>(Y.cast<py::array>(), "Y");
  auto out = new_matrix<T>(xv.rows, yv.rows, "polynomial_kernel output");
  T* o = out.mutable_data();
  {
    matchar_py::ReleaseGil release;
    matchar::gp::polynomial_kernel<T>(xv, yv, zeta, normalize, o);
  }
  return out;
}

py::array polynomial_kernel(const py::array& X, const py::object& Y, int zeta, bool normalize) {
  return dispatch_real(X, "X", [&](auto tag) -> py::array {
    return polynomial_kernel_t<typename decltype(tag)::type>(X, Y, zeta, normalize);
  });
}

// 1 / |row| (0 for zero rows; 1 without normalize) of X (n, d); ValueError on NaN/inf.
template <class T>
py::array_t<T> kernel_row_scales_t(const py::array& X, bool normalize, const std::string& name) {
  const auto xv = matrix_view<T>(X, name.c_str());
  py::array_t<T> out(xv.rows);
  T* o = out.mutable_data();
  matchar_py::ReleaseGil release;
  matchar::gp::kernel_row_scales<T>(xv, normalize, name.c_str(), o);
  return out;
}

py::array kernel_row_scales(const py::array& X, bool normalize, const std::string& name) {
  return dispatch_real(X, name.c_str(), [&](auto tag) -> py::array {
    return kernel_row_scales_t<typename decltype(tag)::type>(X, normalize, name);
  });
}

// block = (block * row_scale[:, None] * col_scale[None, :]) ** zeta, in place; block is a
// writeable 2-D array whose rows are contiguous (a row slice of a C-ordered array), and
// row_scale / col_scale have its dtype (nothing is converted: the block is written).
// threads: OpenMP team size (0: matchar's setting).
template <class T>
void scale_and_power_t(py::array_t<T> block, const py::array_t<T>& row_scale,
                       const py::array_t<T>& col_scale, int zeta, int threads) {
  if (block.ndim() != 2) throw py::value_error("block must be 2-D");
  if (!block.writeable()) throw py::value_error("block must be writeable");
  const auto rows = static_cast<matchar::index_t>(block.shape(0));
  const auto cols = static_cast<matchar::index_t>(block.shape(1));
  if (cols > 1 && block.strides(1) != static_cast<py::ssize_t>(sizeof(T)))
    throw py::value_error("block rows must be contiguous");
  const auto ld = rows > 1 ? static_cast<matchar::index_t>(block.strides(0) / sizeof(T)) : cols;
  if (row_scale.ndim() != 1 || row_scale.shape(0) != rows || col_scale.ndim() != 1 ||
      col_scale.shape(0) != cols)
    throw py::value_error("row_scale / col_scale must match the block's shape");
  if (!(row_scale.flags() & py::array::c_style) || !(col_scale.flags() & py::array::c_style))
    throw py::value_error("scales must be contiguous");
  T* b = block.mutable_data();
  const T* rs = row_scale.data();
  const T* cs = col_scale.data();
  matchar_py::ReleaseGil release;
  matchar::gp::scale_and_power<T>(b, rows, cols, ld, rs, cs, zeta, threads);
}

void scale_and_power(const py::array& block, const py::array& row_scale, const py::array& col_scale,
                     int zeta, int threads) {
  dispatch_real(block, "block", [&](auto tag) {
    using T = typename decltype(tag)::type;
    scale_and_power_t<T>(same_dtype<T>(block, "block", "block"),
                         same_dtype<T>(row_scale, "row_scale", "block"),
                         same_dtype<T>(col_scale, "col_scale", "block"), zeta, threads);
  });
}

}  // namespace

void register_gp(py::module_& m) {
  m.def("polynomial_kernel", &polynomial_kernel, py::arg("X"), py::arg("Y"), py::arg("zeta"),
        py::arg("normalize"));
  m.def("kernel_row_scales", &kernel_row_scales, py::arg("X"), py::arg("normalize"),
        py::arg("name"));
  m.def("scale_and_power", &scale_and_power, py::arg("block").noconvert(),
        py::arg("row_scale").noconvert(), py::arg("col_scale").noconvert(), py::arg("zeta"),
        py::arg("threads") = 0);
}
