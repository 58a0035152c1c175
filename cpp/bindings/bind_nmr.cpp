// matchar._core.nmr: NMR structure-determination kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <limits>
#include <string>

#include "arrays.hpp"
#include "gil.hpp"
#include "matchar/nmr/assignment.hpp"

namespace py = pybind11;
using namespace matchar::bindings;

namespace {

using Vec = CArray<double>;
using IVec = CArray<std::int64_t>;

namespace nmr = matchar::nmr;

template <class T>
py::tuple assignment_log_evidence_t(const py::array& mean, const py::array& var, const Vec& y,
                                    const Vec& var_exp, const IVec& group_sizes,
                                    const nmr::OffsetSpec& offset, nmr::AssignmentMethod method,
                                    const nmr::QuadratureOptions& options, bool details) {
  const auto mv = matrix_view<T>(mean, "mean");
  const auto vv = matrix_view<T>(var, "var");
  if (y.ndim() != 1 || y.shape(0) != mv.cols)
    throw py::value_error("y must be 1-D with one entry per site");
  if (var_exp.ndim() != 1 || var_exp.shape(0) != mv.cols)
    throw py::value_error("var_exp must be 1-D with one entry per site");
  if (group_sizes.ndim() != 1) throw py::value_error("group_sizes must be 1-D");
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
  nmr::AssignmentDetails det;
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
    matchar_py::ReleaseGil release;
    nmr::assignment_log_evidence<T>(mv, vv, yp, vp, gp, ng, offset, method, options, o, det);
  }
  return py::make_tuple(out, marg, site, offset_mean, bands, change);
}

// An enum bound with py::enum_ still takes any integer (OffsetMode(7)): only the named
// values reach the kernel.
void check_enums(const nmr::OffsetSpec& offset, nmr::AssignmentMethod method) {
  const int mode = static_cast<int>(offset.mode), m = static_cast<int>(method);
  if (mode < 0 || mode > 2) throw py::value_error("offset.mode is not an OffsetMode");
  if (m < 0 || m > 4) throw py::value_error("method is not an AssignmentMethod");
}

// mean's dtype (float32 or float64) picks the kernel; var must have the same.
py::tuple assignment_log_evidence(const py::array& mean, const py::array& var, const Vec& y,
                                  const Vec& var_exp, const IVec& group_sizes,
                                  const nmr::OffsetSpec& offset, nmr::AssignmentMethod method,
                                  const nmr::QuadratureOptions& options, bool details) {
  return dispatch_real(mean, "mean", [&](auto tag) {
    check_enums(offset, method);
    return assignment_log_evidence_t<typename decltype(tag)::type>(
        mean, var, y, var_exp, group_sizes, offset, method, options, details);
  });
}

std::string repr(const nmr::OffsetSpec& o) {
  return "OffsetSpec(mode=" + std::string(py::str(py::cast(o.mode))) +
         ", value=" + std::string(py::repr(py::float_(o.value))) +
         ", prior_mean=" + std::string(py::repr(py::float_(o.prior_mean))) +
         ", prior_std=" + std::string(py::repr(py::float_(o.prior_std))) + ")";
}

std::string repr(const nmr::QuadratureOptions& o) {
  auto f = [](double x) { return std::string(py::repr(py::float_(x))); };
  return "QuadratureOptions(step_factor=" + f(o.step_factor) + ", tail_nats=" + f(o.tail_nats) +
         ", exact_group_size=" + std::to_string(o.exact_group_size) +
         ", max_bp_iterations=" + std::to_string(o.max_bp_iterations) +
         ", bp_tolerance=" + f(o.bp_tolerance) + ", n_samples=" + std::to_string(o.n_samples) +
         ", seed=" + std::to_string(o.seed) + ", band=" + std::to_string(o.band) +
         ", band_tolerance=" + f(o.band_tolerance) + ", max_band=" + std::to_string(o.max_band) +
         ")";
}

void register_assignment_types(py::module_& m) {
  py::enum_<nmr::OffsetMode>(m, "OffsetMode", "How the reference offset b is treated.")
      .value("Marginal", nmr::OffsetMode::Marginal,
             "integrated out: flat prior (density 1 per ppm) or Gaussian prior")
      .value("Profile", nmr::OffsetMode::Profile,
             "maximised per assignment (AssignmentMethod.Enumerate only)")
      .value("Fixed", nmr::OffsetMode::Fixed, "a known offset, OffsetSpec.value");
  py::enum_<nmr::AssignmentMethod>(m, "AssignmentMethod",
                                   "How the peak-to-site assignment is marginalised (see "
                                   "matchar/nmr/assignment.hpp and docs/nmr.md).")
      .value("Enumerate", nmr::AssignmentMethod::Enumerate,
             "every allowed permutation, the offset integrated at each (exact)")
      .value("Quadrature", nmr::AssignmentMethod::Quadrature,
             "offset quadrature times exact permanents (groups of <= 24 sites)")
      .value("Bethe", nmr::AssignmentMethod::Bethe,
             "quadrature; Bethe permanents above QuadratureOptions.exact_group_size")
      .value("Sampling", nmr::AssignmentMethod::Sampling,
             "importance sampling of whole assignments (unbiased)")
      .value("Banded", nmr::AssignmentMethod::Banded,
             "quadrature; permanents restricted to a band (a lower bound)");

  const nmr::OffsetSpec od;
  py::class_<nmr::OffsetSpec>(m, "OffsetSpec", "The reference offset b: mode and its values.")
      .def(py::init([](nmr::OffsetMode mode, double value, double prior_mean, double prior_std) {
             nmr::OffsetSpec o;
             o.mode = mode;
             o.value = value;
             o.prior_mean = prior_mean;
             o.prior_std = prior_std;
             return o;
           }),
           py::kw_only(), py::arg("mode") = od.mode, py::arg("value") = od.value,
           py::arg("prior_mean") = od.prior_mean, py::arg("prior_std") = od.prior_std)
      .def_readwrite("mode", &nmr::OffsetSpec::mode)
      .def_readwrite("value", &nmr::OffsetSpec::value, "Fixed: the known offset (ppm)")
      .def_readwrite("prior_mean", &nmr::OffsetSpec::prior_mean,
                     "Marginal: mean of a Gaussian prior on b (ppm)")
      .def_readwrite("prior_std", &nmr::OffsetSpec::prior_std,
                     "Marginal: std of a Gaussian prior on b (ppm); inf = flat")
      .def("__repr__", [](const nmr::OffsetSpec& o) { return repr(o); });

  const nmr::QuadratureOptions qd;
  py::class_<nmr::QuadratureOptions>(m, "QuadratureOptions",
                                     "Tuning of the quadrature, Bethe, sampling and banded "
                                     "methods (defaults: those of the C++ library).")
      .def(py::init([](double step_factor, double tail_nats, int exact_group_size,
                       int max_bp_iterations, double bp_tolerance, int n_samples,
                       std::uint64_t seed, int band, double band_tolerance, int max_band) {
             nmr::QuadratureOptions o;
             o.step_factor = step_factor;
             o.tail_nats = tail_nats;
             o.exact_group_size = exact_group_size;
             o.max_bp_iterations = max_bp_iterations;
             o.bp_tolerance = bp_tolerance;
             o.n_samples = n_samples;
             o.seed = seed;
             o.band = band;
             o.band_tolerance = band_tolerance;
             o.max_band = max_band;
             return o;
           }),
           py::kw_only(), py::arg("step_factor") = qd.step_factor,
           py::arg("tail_nats") = qd.tail_nats, py::arg("exact_group_size") = qd.exact_group_size,
           py::arg("max_bp_iterations") = qd.max_bp_iterations,
           py::arg("bp_tolerance") = qd.bp_tolerance, py::arg("n_samples") = qd.n_samples,
           py::arg("seed") = qd.seed, py::arg("band") = qd.band,
           py::arg("band_tolerance") = qd.band_tolerance, py::arg("max_band") = qd.max_band)
      .def_readwrite("step_factor", &nmr::QuadratureOptions::step_factor,
                     "node spacing = step_factor / sqrt(max total precision)")
      .def_readwrite("tail_nats", &nmr::QuadratureOptions::tail_nats,
                     "nodes whose upper bound is this far below the best are skipped")
      .def_readwrite("exact_group_size", &nmr::QuadratureOptions::exact_group_size,
                     "Bethe: groups up to this size are exact")
      .def_readwrite("max_bp_iterations", &nmr::QuadratureOptions::max_bp_iterations, "Bethe")
      .def_readwrite("bp_tolerance", &nmr::QuadratureOptions::bp_tolerance,
                     "Bethe: relative change of the messages")
      .def_readwrite("n_samples", &nmr::QuadratureOptions::n_samples,
                     "Sampling: assignments drawn per candidate")
      .def_readwrite("seed", &nmr::QuadratureOptions::seed,
                     "Sampling: candidate c uses a stream from (seed, c)")
      .def_readwrite("band", &nmr::QuadratureOptions::band,
                     "Banded: the half-width w; 0 = adaptive")
      .def_readwrite("band_tolerance", &nmr::QuadratureOptions::band_tolerance,
                     "Banded, adaptive: stop growing w below this change (nats)")
      .def_readwrite("max_band", &nmr::QuadratureOptions::max_band,
                     "Banded, adaptive: largest w tried")
      .def("__repr__", [](const nmr::QuadratureOptions& o) { return repr(o); });
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
    matchar_py::ReleaseGil release;
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
  matchar_py::ReleaseGil release;
  return bethe ? matchar::nmr::log_bethe_permanent(buf.data(), k, max_iterations, tolerance)
               : matchar::nmr::log_permanent(buf.data(), k);
}

}  // namespace

void register_nmr(py::module_& m) {
  register_assignment_types(m);
  m.def("assignment_log_evidence", &assignment_log_evidence, py::arg("mean"), py::arg("var"),
        py::arg("y"), py::arg("var_exp"), py::arg("group_sizes"), py::arg("offset"),
        py::arg("method"), py::arg("options"), py::arg("details") = false);
  m.def("permanent_marginals", &permanent_marginals, py::arg("log_a"), py::arg("band") = -1);
  m.def("log_permanent", &log_permanent, py::arg("log_a"), py::arg("bethe") = false,
        py::arg("max_iterations") = 300, py::arg("tolerance") = 1e-10);
}
