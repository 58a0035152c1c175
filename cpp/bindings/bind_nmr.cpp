// matchar._core.nmr: NMR structure-determination kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <limits>
#include <string>

#include "arrays.hpp"
#include "matchar/nmr/assignment.hpp"

namespace py = pybind11;
using namespace matchar::bindings;

namespace {

using Vec = CArray<double>;
using IVec = CArray<std::int64_t>;

template <class T>
py::tuple assignment_log_evidence_t(const py::array& mean, const py::array& var, const Vec& y,
                                    const Vec& var_exp, const IVec& group_sizes, int offset_mode,
                                    double offset_value, double prior_mean, double prior_std,
                                    int method, double step_factor, double tail_nats,
                                    int exact_group_size, int max_bp_iterations,
                                    double bp_tolerance, int n_samples, std::uint64_t seed,
                                    int band, double band_tolerance, int max_band, bool details) {
  const auto mv = matrix_view<T>(mean, "mean");
  const auto vv = matrix_view<T>(var, "var");
  if (y.ndim() != 1 || y.shape(0) != mv.cols)
    throw py::value_error("y must be 1-D with one entry per site");
  if (var_exp.ndim() != 1 || var_exp.shape(0) != mv.cols)
    throw py::value_error("var_exp must be 1-D with one entry per site");
  if (group_sizes.ndim() != 1) throw py::value_error("group_sizes must be 1-D");
  if (offset_mode < 0 || offset_mode > 2) throw py::value_error("offset_mode must be 0, 1 or 2");
  if (method < 0 || method > 4) throw py::value_error("method must be 0, 1, 2, 3 or 4");
  matchar::nmr::OffsetSpec off;
  off.mode = static_cast<matchar::nmr::OffsetMode>(offset_mode);
  off.value = offset_value;
  off.prior_mean = prior_mean;
  off.prior_std = prior_std;
  matchar::nmr::QuadratureOptions opt;
  opt.step_factor = step_factor;
  opt.tail_nats = tail_nats;
  opt.exact_group_size = exact_group_size;
  opt.max_bp_iterations = max_bp_iterations;
  opt.bp_tolerance = bp_tolerance;
  opt.n_samples = n_samples;
  opt.seed = seed;
  opt.band = band;
  opt.band_tolerance = band_tolerance;
  opt.max_band = max_band;
  py::array_t<double> out(mv.rows);
  double* o = out.mutable_data();
  const double* yp = y.data();
  const double* vp = var_exp.data();
  static_assert(sizeof(std::int64_t) == sizeof(matchar::index_t), "index_t is 64-bit");
  const auto* gp = reinterpret_cast<const matchar::index_t*>(group_sizes.data());
  const auto ng = static_cast<matchar::index_t>(group_sizes.shape(0));
  // Details: packed marginals (sum over peaks of their group's size entries per candidate;
  // the kernel checks that group_sizes sum to the number of sites).
  matchar::index_t packed = 0;
  for (matchar::index_t g = 0; g < ng; ++g) packed += gp[g] > 0 ? gp[g] * gp[g] : 0;
  matchar::nmr::AssignmentDetails det;
  // The band used and its last change are cheap: always returned (0 / NaN if unused).
  py::array_t<std::int64_t> bands({mv.rows, ng});
  py::array_t<double> change({mv.rows, ng});
  std::fill(bands.mutable_data(), bands.mutable_data() + mv.rows * ng, 0);
  std::fill(change.mutable_data(), change.mutable_data() + mv.rows * ng,
            std::numeric_limits<double>::quiet_NaN());
  det.band = reinterpret_cast<matchar::index_t*>(bands.mutable_data());
  det.band_change = change.mutable_data();
  py::object marg = py::none(), site = py::none(), offset_mean = py::none();
  if (details) {
    matchar::check_allocation(static_cast<std::size_t>(mv.rows) * static_cast<std::size_t>(packed),
                              sizeof(double), "assignment marginals");
    py::array_t<double> m({mv.rows, packed}), st({mv.rows, mv.cols}), om(mv.rows);
    det.marginals = m.mutable_data();
    det.site = st.mutable_data();
    det.offset_mean = om.mutable_data();
    marg = m;
    site = st;
    offset_mean = om;
  }
  {
    py::gil_scoped_release release;
    matchar::nmr::assignment_log_evidence<T>(mv, vv, yp, vp, gp, ng, off,
                                             static_cast<matchar::nmr::AssignmentMethod>(method),
                                             opt, o, det);
  }
  return py::make_tuple(out, marg, site, offset_mean, bands, change);
}

// mean's dtype (float32 or float64) picks the kernel; var must have the same.
py::tuple assignment_log_evidence(const py::array& mean, const py::array& var, const Vec& y,
                                  const Vec& var_exp, const IVec& group_sizes, int offset_mode,
                                  double offset_value, double prior_mean, double prior_std,
                                  int method, double step_factor, double tail_nats,
                                  int exact_group_size, int max_bp_iterations, double bp_tolerance,
                                  int n_samples, std::uint64_t seed, int band,
                                  double band_tolerance, int max_band, bool details) {
  return dispatch_real(mean, "mean", [&](auto tag) {
    return assignment_log_evidence_t<typename decltype(tag)::type>(
        mean, var, y, var_exp, group_sizes, offset_mode, offset_value, prior_mean, prior_std,
        method, step_factor, tail_nats, exact_group_size, max_bp_iterations, bp_tolerance,
        n_samples, seed, band, band_tolerance, max_band, details);
  });
}

py::tuple permanent_marginals(const py::array& log_a, int band) {
  const auto v = matrix_view<double>(log_a, "log_a");
  if (v.rows != v.cols || v.rows < 1) throw py::value_error("log_a must be square, non-empty");
  std::vector<double> buf(static_cast<std::size_t>(v.rows * v.cols));
  for (matchar::index_t i = 0; i < v.rows; ++i)
    for (matchar::index_t j = 0; j < v.cols; ++j) buf[i * v.cols + j] = v(i, j);
  const int k = static_cast<int>(v.rows);
  py::array_t<double> marg({v.rows, v.cols});
  double* mp = marg.mutable_data();
  double value;
  {
    py::gil_scoped_release release;
    value = band < 0 ? matchar::nmr::log_permanent_marginals(buf.data(), k, mp)
                     : matchar::nmr::log_banded_permanent(buf.data(), k, band, mp);
  }
  return py::make_tuple(value, marg);
}

double log_permanent(const py::array& log_a, bool bethe, int max_iterations, double tolerance) {
  const auto v = matrix_view<double>(log_a, "log_a");
  if (v.rows != v.cols || v.rows < 1) throw py::value_error("log_a must be square, non-empty");
  std::vector<double> buf(static_cast<std::size_t>(v.rows * v.cols));
  for (matchar::index_t i = 0; i < v.rows; ++i)
    for (matchar::index_t j = 0; j < v.cols; ++j) buf[i * v.cols + j] = v(i, j);
  const int k = static_cast<int>(v.rows);
  py::gil_scoped_release release;
  return bethe ? matchar::nmr::log_bethe_permanent(buf.data(), k, max_iterations, tolerance)
               : matchar::nmr::log_permanent(buf.data(), k);
}

}  // namespace

void register_nmr(py::module_& m) {
  m.def("assignment_log_evidence", &assignment_log_evidence, py::arg("mean"), py::arg("var"),
        py::arg("y"), py::arg("var_exp"), py::arg("group_sizes"), py::arg("offset_mode"),
        py::arg("offset_value"), py::arg("prior_mean"), py::arg("prior_std"), py::arg("method"),
        py::arg("step_factor"), py::arg("tail_nats"), py::arg("exact_group_size"),
        py::arg("max_bp_iterations"), py::arg("bp_tolerance"), py::arg("n_samples"),
        py::arg("seed"), py::arg("band") = 0, py::arg("band_tolerance") = 1e-3,
        py::arg("max_band") = 7, py::arg("details") = false);
  m.def("permanent_marginals", &permanent_marginals, py::arg("log_a"), py::arg("band") = -1);
  m.def("log_permanent", &log_permanent, py::arg("log_a"), py::arg("bethe") = false,
        py::arg("max_iterations") = 300, py::arg("tolerance") = 1e-10);
}
