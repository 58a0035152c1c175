// matchar._core.atoms: SOAP power spectra and spherical expansions.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "gil.hpp"
#include "matchar/atoms/soap.hpp"

namespace py = pybind11;
using namespace matchar::bindings;
using matchar::index_t;
using matchar::atoms::Soap;

namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw py::value_error(what);
}

// Checks the shapes of the concatenated frame arrays and returns borrowed views.
matchar::atoms::Frames frames_view(const CArray<double>& positions, const CArray<int>& species,
                                   const CArray<index_t>& offsets, const CArray<double>& cells,
                                   const CArray<bool>& pbc) {
  require(offsets.ndim() == 1 && offsets.shape(0) >= 1, "offsets must be 1-D and non-empty");
  const index_t n_frames = offsets.shape(0) - 1;
  const index_t n_atoms = offsets.at(n_frames);
  require(offsets.at(0) == 0, "offsets must start at 0");
  require(positions.ndim() == 2 && positions.shape(0) == n_atoms && positions.shape(1) == 3,
          "positions must have shape (n_atoms, 3)");
  require(species.ndim() == 1 && species.shape(0) == n_atoms, "species must have shape (n_atoms,)");
  require(
      cells.ndim() == 3 && cells.shape(0) == n_frames && cells.shape(1) == 3 && cells.shape(2) == 3,
      "cells must have shape (n_frames, 3, 3)");
  require(pbc.ndim() == 2 && pbc.shape(0) == n_frames && pbc.shape(1) == 3,
          "pbc must have shape (n_frames, 3)");
  matchar::atoms::Frames f;
  f.positions = positions.data();
  f.species = species.data();
  f.offsets = offsets.data();
  f.n_frames = n_frames;
  f.cells = cells.data();
  f.pbc = pbc.data();
  return f;
}

index_t centers_count(const CArray<index_t>& centers) {
  require(centers.ndim() == 2 && centers.shape(1) == 2, "centers must have shape (n_centers, 2)");
  return centers.shape(0);
}

template <class T>
py::array_t<T> power_spectrum_t(const Soap& soap, const CArray<double>& positions,
                                const CArray<int>& species, const CArray<index_t>& offsets,
                                const CArray<double>& cells, const CArray<bool>& pbc,
                                const CArray<index_t>& centers, bool normalize,
                                const py::object& out_arg) {
  const auto f = frames_view(positions, species, offsets, cells, pbc);
  const index_t n = centers_count(centers);
  py::array_t<T> out;
  if (out_arg.is_none()) {
    out = new_matrix<T>(n, soap.n_features(), "SOAP power spectrum output");
  } else {
    // Fill the caller's array in place (no temporary): it must fit exactly.
    out = py::array_t<T>::ensure(out_arg);
    require(out && py::isinstance<py::array_t<T>>(out_arg) && out.ndim() == 2 &&
                out.shape(0) == n && out.shape(1) == soap.n_features() &&
                (out.flags() & py::array::c_style) && out.writeable(),
            "out must be a writeable C-contiguous array of shape (n_centers, n_features) "
            "and the output dtype");
  }
  T* o = out.mutable_data();
  {
    matchar_py::ReleaseGil release;
    soap.power_spectrum<T>(f, centers.data(), n, normalize, o);
  }
  return out;
}

// The features' dtype (float32 or float64) is the `dtype` argument; an `out` must have it.
py::array power_spectrum(const Soap& soap, const CArray<double>& positions,
                         const CArray<int>& species, const CArray<index_t>& offsets,
                         const CArray<double>& cells, const CArray<bool>& pbc,
                         const CArray<index_t>& centers, bool normalize, const py::object& dtype,
                         const py::object& out) {
  return dispatch_real_dtype(dtype, [&](auto tag) -> py::array {
    return power_spectrum_t<typename decltype(tag)::type>(soap, positions, species, offsets, cells,
                                                          pbc, centers, normalize, out);
  });
}

py::array_t<double> spherical_expansion(const Soap& soap, const CArray<double>& positions,
                                        const CArray<int>& species, const CArray<index_t>& offsets,
                                        const CArray<double>& cells, const CArray<bool>& pbc,
                                        const CArray<index_t>& centers) {
  const auto f = frames_view(positions, species, offsets, cells, pbc);
  const index_t n = centers_count(centers);
  auto out = new_matrix<double>(n, soap.n_coefficients(), "SOAP spherical expansion output");
  double* o = out.mutable_data();
  {
    matchar_py::ReleaseGil release;
    soap.spherical_expansion(f, centers.data(), n, o);
  }
  return out;
}

}  // namespace

void register_atoms(py::module_& m) {
  py::class_<Soap>(m, "Soap")
      .def(py::init([](double cutoff, int n_radial, int max_angular, double atomic_width,
                       double smoothing, double center_weight, bool exact_radial, int n_species,
                       bool compress, const CArray<bool>& pair_mask, double scaling_radius,
                       double scaling_rate, double scaling_exponent) {
             matchar::atoms::SoapParameters p;
             p.cutoff = cutoff;
             p.n_radial = n_radial;
             p.max_angular = max_angular;
             p.atomic_width = atomic_width;
             p.smoothing = smoothing;
             p.center_weight = center_weight;
             p.exact_radial = exact_radial;
             p.compress = compress;
             p.scaling_radius = scaling_radius;
             p.scaling_rate = scaling_rate;
             p.scaling_exponent = scaling_exponent;
             require(pair_mask.size() == 0 ||
                         (pair_mask.ndim() == 2 && pair_mask.shape(0) == n_species &&
                          pair_mask.shape(1) == n_species),
                     "pair_mask must be empty or have shape (n_species, n_species)");
             std::vector<char> mask(pair_mask.data(), pair_mask.data() + pair_mask.size());
             matchar_py::ReleaseGil release;  // building the spline table takes a while
             return new Soap(p, n_species, std::move(mask));
           }),
           py::arg("cutoff"), py::arg("n_radial"), py::arg("max_angular"), py::arg("atomic_width"),
           py::arg("smoothing"), py::arg("center_weight"), py::arg("exact_radial"),
           py::arg("n_species"), py::arg("compress"), py::arg("pair_mask"),
           py::arg("scaling_radius") = 0.0, py::arg("scaling_rate") = 1.0,
           py::arg("scaling_exponent") = 0.0)
      .def_property_readonly("n_features", &Soap::n_features)
      .def_property_readonly("n_coefficients", &Soap::n_coefficients)
      .def("power_spectrum", &power_spectrum, py::arg("positions"), py::arg("species"),
           py::arg("offsets"), py::arg("cells"), py::arg("pbc"), py::arg("centers"),
           py::arg("normalize"), py::arg("dtype"), py::arg("out") = py::none())
      .def("spherical_expansion", &spherical_expansion, py::arg("positions"), py::arg("species"),
           py::arg("offsets"), py::arg("cells"), py::arg("pbc"), py::arg("centers"));

  m.def(
      "gto_radial_integral",
      [](double cutoff, int n_radial, int max_angular, double atomic_width, bool exact,
         const CArray<double>& r) {
        require(r.ndim() == 1, "r must be 1-D");
        matchar::atoms::SoapParameters p;
        p.cutoff = cutoff;
        p.n_radial = n_radial;
        p.max_angular = max_angular;
        p.atomic_width = atomic_width;
        p.exact_radial = exact;
        const index_t n = r.shape(0);
        const matchar::atoms::GtoRadialIntegral ri(p);
        auto out = new_matrix<double>(n, ri.size(), "radial integral output");
        double* o = out.mutable_data();
        const double* rv = r.data();
        matchar_py::ReleaseGil release;
        for (index_t i = 0; i < n; ++i) ri.compute(rv[i], o + i * ri.size());
        return out;
      },
      py::arg("cutoff"), py::arg("n_radial"), py::arg("max_angular"), py::arg("atomic_width"),
      py::arg("exact"), py::arg("r"),
      "R_nl(r) as (len(r), (max_angular + 1) * n_radial), [l * n_radial + n].");
  m.def(
      "real_spherical_harmonics",
      [](int max_angular, const CArray<double>& directions) {
        require(directions.ndim() == 2 && directions.shape(1) == 3,
                "directions must have shape (n, 3)");
        require(max_angular >= 0 && max_angular <= matchar::atoms::kMaxAngularSupported,
                "max_angular out of range");
        const index_t n = directions.shape(0), lm = (max_angular + 1) * (max_angular + 1);
        auto out = new_matrix<double>(n, lm, "spherical harmonics output");
        double* o = out.mutable_data();
        const double* d = directions.data();
        for (index_t i = 0; i < n; ++i)
          matchar::atoms::real_spherical_harmonics(max_angular, d[3 * i], d[3 * i + 1],
                                                   d[3 * i + 2], o + i * lm);
        return out;
      },
      py::arg("max_angular"), py::arg("directions"),
      "Real spherical harmonics of unit vectors, (n, (max_angular + 1)^2), [l^2 + l + m].");
}
