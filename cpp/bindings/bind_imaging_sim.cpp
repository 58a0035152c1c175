// matchar._core.imaging (simulation part): HAADF column rendering and kinematic CBED
// patterns for the simulators and the crystal classifiers' training data.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "arrays.hpp"
#include "gil.hpp"
#include "matchar/imaging/cbed.hpp"
#include "matchar/imaging/simulate.hpp"

namespace py = pybind11;
using namespace matchar::bindings;

namespace {

using f64_c = CArray<double>;
using i64_c = CArray<std::int64_t>;

template <class T>
py::array_t<T> render_haadf_t(const f64_c& columns, const i64_c& column_offsets,
                              const i64_c& motif_index, const f64_c& params, matchar::index_t rows,
                              matchar::index_t cols, std::uint64_t seed) {
  if (columns.ndim() != 2 || columns.shape(1) != 3)
    throw py::value_error("columns must have shape (n_columns, 3)");
  if (column_offsets.ndim() != 1 || column_offsets.shape(0) < 2)
    throw py::value_error("column_offsets must be 1-D with at least 2 entries");
  if (motif_index.ndim() != 1) throw py::value_error("motif_index must be 1-D");
  const matchar::index_t n = motif_index.shape(0);
  if (params.ndim() != 2 || params.shape(0) != n ||
      params.shape(1) != matchar::imaging::kHaadfParams)
    throw py::value_error("params must have shape (n_images, " +
                          std::to_string(matchar::imaging::kHaadfParams) + ")");
  const matchar::index_t n_motifs = column_offsets.shape(0) - 1;
  if (column_offsets.data()[n_motifs] != columns.shape(0))
    throw py::value_error("column_offsets[-1] must equal the number of columns");
  if (rows < 1 || cols < 1) throw py::value_error("rows and cols must be >= 1");
  matchar::check_allocation(
      static_cast<std::size_t>(n) * static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols),
      sizeof(T), "render_haadf output");
  py::array_t<T> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(rows),
                      static_cast<py::ssize_t>(cols)});
  T* o = out.mutable_data();
  {
    matchar_py::ReleaseGil release;
    matchar::imaging::render_haadf<T>(columns.data(), column_offsets.data(), n_motifs,
                                      motif_index.data(), params.data(), n, rows, cols, seed, o);
  }
  return out;
}

// The images' dtype (float32 or float64) is the `dtype` argument: no input decides it.
py::array render_haadf(const f64_c& columns, const i64_c& column_offsets, const i64_c& motif_index,
                       const f64_c& params, matchar::index_t rows, matchar::index_t cols,
                       std::uint64_t seed, const py::object& dtype) {
  return dispatch_real_dtype(dtype, [&](auto tag) -> py::array {
    return render_haadf_t<typename decltype(tag)::type>(columns, column_offsets, motif_index,
                                                        params, rows, cols, seed);
  });
}

template <class T>
py::array_t<T> render_cbed_t(const f64_c& reflections, const i64_c& refl_offsets,
                             const f64_c& atoms, const i64_c& atom_offsets, const f64_c& volumes,
                             const i64_c& motif_index, const f64_c& params, matchar::index_t rows,
                             matchar::index_t cols, std::uint64_t seed) {
  if (reflections.ndim() != 2 || reflections.shape(1) != 5)
    throw py::value_error("reflections must have shape (n_reflections, 5)");
  if (atoms.ndim() != 2 || atoms.shape(1) != 4)
    throw py::value_error("atoms must have shape (n_atoms, 4)");
  if (volumes.ndim() != 1 || volumes.shape(0) < 1)
    throw py::value_error("volumes must be 1-D with one entry per motif");
  const matchar::index_t n_motifs = volumes.shape(0);
  if (refl_offsets.ndim() != 1 || refl_offsets.shape(0) != n_motifs + 1 ||
      atom_offsets.ndim() != 1 || atom_offsets.shape(0) != n_motifs + 1)
    throw py::value_error("refl_offsets and atom_offsets must be 1-D with n_motifs + 1 entries");
  if (refl_offsets.data()[n_motifs] != reflections.shape(0))
    throw py::value_error("refl_offsets[-1] must equal the number of reflections");
  if (atom_offsets.data()[n_motifs] != atoms.shape(0))
    throw py::value_error("atom_offsets[-1] must equal the number of atoms");
  if (motif_index.ndim() != 1) throw py::value_error("motif_index must be 1-D");
  const matchar::index_t n = motif_index.shape(0);
  if (params.ndim() != 2 || params.shape(0) != n ||
      params.shape(1) != matchar::imaging::kCbedParams)
    throw py::value_error("params must have shape (n_patterns, " +
                          std::to_string(matchar::imaging::kCbedParams) + ")");
  if (rows < 1 || cols < 1) throw py::value_error("rows and cols must be >= 1");
  matchar::check_allocation(
      static_cast<std::size_t>(n) * static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols),
      sizeof(T), "render_cbed output");
  py::array_t<T> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(rows),
                      static_cast<py::ssize_t>(cols)});
  T* o = out.mutable_data();
  {
    matchar_py::ReleaseGil release;
    matchar::imaging::render_cbed<T>(reflections.data(), refl_offsets.data(), atoms.data(),
                                     atom_offsets.data(), volumes.data(), n_motifs,
                                     motif_index.data(), params.data(), n, rows, cols, seed, o);
  }
  return out;
}

py::array render_cbed(const f64_c& reflections, const i64_c& refl_offsets, const f64_c& atoms,
                      const i64_c& atom_offsets, const f64_c& volumes, const i64_c& motif_index,
                      const f64_c& params, matchar::index_t rows, matchar::index_t cols,
                      std::uint64_t seed, const py::object& dtype) {
  return dispatch_real_dtype(dtype, [&](auto tag) -> py::array {
    return render_cbed_t<typename decltype(tag)::type>(reflections, refl_offsets, atoms,
                                                       atom_offsets, volumes, motif_index, params,
                                                       rows, cols, seed);
  });
}

}  // namespace

void register_imaging_sim(py::module_& m) {
  m.attr("HAADF_N_PARAMS") = matchar::imaging::kHaadfParams;
  m.def("render_haadf", &render_haadf, py::arg("columns"), py::arg("column_offsets"),
        py::arg("motif_index"), py::arg("params"), py::arg("rows"), py::arg("cols"),
        py::arg("seed"), py::arg("dtype"));
  m.attr("CBED_N_PARAMS") = matchar::imaging::kCbedParams;
  m.def("render_cbed", &render_cbed, py::arg("reflections"), py::arg("refl_offsets"),
        py::arg("atoms"), py::arg("atom_offsets"), py::arg("volumes"), py::arg("motif_index"),
        py::arg("params"), py::arg("rows"), py::arg("cols"), py::arg("seed"), py::arg("dtype"));
  m.def("moliere_scattering_factor", &matchar::imaging::moliere_scattering_factor, py::arg("z"),
        py::arg("g"));
}
