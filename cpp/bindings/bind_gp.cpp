// matchar._core.gp: Gaussian-process kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "matchar/gp/kernels.hpp"

namespace py = pybind11;
using namespace matchar::bindings;

namespace {

// Y = None: the Gram matrix K(X, X), computed with its symmetry.
template <class T>
py::array_t<T> polynomial_kernel(const py::array& X, const py::object& Y, int zeta,
                                 bool normalize) {
  const auto xv = matrix_view<T>(X, "X");
  if (Y.is_none()) {
    auto out = new_matrix<T>(xv.rows, xv.rows, "polynomial_kernel output");
    T* o = out.mutable_data();
    py::gil_scoped_release release;
    matchar::gp::polynomial_kernel<T>(xv, zeta, normalize, o);
    return out;
  }
  const auto yv = matrix_view<T>(Y.cast<py::array>(), "Y");
  auto out = new_matrix<T>(xv.rows, yv.rows, "polynomial_kernel output");
  T* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    matchar::gp::polynomial_kernel<T>(xv, yv, zeta, normalize, o);
  }
  return out;
}

}  // namespace

void register_gp(py::module_& m) {
  m.def("polynomial_kernel_f32", &polynomial_kernel<float>, py::arg("X"), py::arg("Y"),
        py::arg("zeta"), py::arg("normalize"));
  m.def("polynomial_kernel_f64", &polynomial_kernel<double>, py::arg("X"), py::arg("Y"),
        py::arg("zeta"), py::arg("normalize"));
}
