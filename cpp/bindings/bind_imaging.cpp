// matchar._core.imaging: STEM image descriptors.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "arrays.hpp"
#include "gil.hpp"
#include "matchar/imaging/correlation.hpp"
#include "matchar/imaging/symmetry.hpp"

namespace py = pybind11;
using namespace matchar::bindings;

namespace {

py::array_t<int> select_shifts(int window, int n_shifts) {
  const std::vector<int> s = matchar::imaging::select_shifts(window, n_shifts);
  py::array_t<int> out({static_cast<py::ssize_t>(n_shifts), static_cast<py::ssize_t>(2)});
  std::copy(s.begin(), s.end(), out.mutable_data());
  return out;
}

template <class T>
py::array_t<float> local_correlation_map_t(const py::array& image, int patch, int window,
                                           const CArray<int>& shifts, int stride) {
  const auto iv = matrix_view<T>(image, "image");
  if (shifts.ndim() != 2 || shifts.shape(1) != 2)
    throw py::value_error("shifts must have shape (n_shifts, 2)");
  const matchar::index_t S = shifts.shape(0);
  const auto Ho = matchar::imaging::correlation_map_extent(iv.rows, patch, window, stride);
  const auto Wo = matchar::imaging::correlation_map_extent(iv.cols, patch, window, stride);
  if (Ho > 0 && Wo > 0 && S > 0)
    matchar::check_allocation(
        static_cast<std::size_t>(Ho) * static_cast<std::size_t>(Wo) * static_cast<std::size_t>(S),
        sizeof(float), "local_correlation_map output");
  py::array_t<float> out({static_cast<py::ssize_t>(std::max<matchar::index_t>(Ho, 0)),
                          static_cast<py::ssize_t>(std::max<matchar::index_t>(Wo, 0)),
                          static_cast<py::ssize_t>(S)});
  float* o = out.mutable_data();
  const int* s = shifts.data();
  {
    matchar_py::ReleaseGil release;
    matchar::imaging::local_correlation_map<T>(iv, patch, window, s, S, stride, o);
  }
  return out;
}

// The image's dtype (float32 or float64) picks the kernel; the map is float32 either way.
py::array_t<float> local_correlation_map(const py::array& image, int patch, int window,
                                         const CArray<int>& shifts, int stride) {
  return dispatch_real(image, "image", [&](auto tag) {
    return local_correlation_map_t<typename decltype(tag)::type>(image, patch, window, shifts,
                                                                 stride);
  });
}

template <class T>
py::array_t<float> symmetry_map_t(const py::array& image, int patch,
                                  const CArray<double>& transforms, int stride) {
  const auto iv = matrix_view<T>(image, "image");
  if (transforms.ndim() != 3 || transforms.shape(1) != 2 || transforms.shape(2) != 2)
    throw py::value_error("transforms must have shape (n_transforms, 2, 2)");
  const matchar::index_t n_t = transforms.shape(0);
  const auto Ho = matchar::imaging::symmetry_map_extent(iv.rows, patch, stride);
  const auto Wo = matchar::imaging::symmetry_map_extent(iv.cols, patch, stride);
  if (Ho > 0 && Wo > 0 && n_t > 0)
    matchar::check_allocation(
        static_cast<std::size_t>(Ho) * static_cast<std::size_t>(Wo) * static_cast<std::size_t>(n_t),
        sizeof(float), "symmetry_map output");
  py::array_t<float> out({static_cast<py::ssize_t>(std::max<matchar::index_t>(Ho, 0)),
                          static_cast<py::ssize_t>(std::max<matchar::index_t>(Wo, 0)),
                          static_cast<py::ssize_t>(n_t)});
  float* o = out.mutable_data();
  const double* tr = transforms.data();
  {
    matchar_py::ReleaseGil release;
    matchar::imaging::symmetry_map<T>(iv, patch, tr, n_t, stride, o);
  }
  return out;
}

py::array_t<float> symmetry_map(const py::array& image, int patch, const CArray<double>& transforms,
                                int stride) {
  return dispatch_real(image, "image", [&](auto tag) {
    return symmetry_map_t<typename decltype(tag)::type>(image, patch, transforms, stride);
  });
}

}  // namespace

void register_imaging(py::module_& m) {
  m.def("select_shifts", &select_shifts, py::arg("window"), py::arg("n_shifts"));
  m.def("local_correlation_map", &local_correlation_map, py::arg("image"), py::arg("patch"),
        py::arg("window"), py::arg("shifts"), py::arg("stride"));
  m.def("symmetry_map", &symmetry_map, py::arg("image"), py::arg("patch"), py::arg("transforms"),
        py::arg("stride"));
}
