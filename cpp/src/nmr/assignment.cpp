// matchar::nmr::assignment_log_evidence (matchar/nmr/assignment.hpp): the checks, the
// layout shared by the methods, and the method's own file (assignment_enumerate.cpp;
// assignment_quadrature.cpp with assignment_banded.cpp and assignment_sampling.cpp; the
// permanents in permanents.cpp).
#include "matchar/nmr/assignment.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "assignment_impl.hpp"

namespace matchar::nmr {

using namespace detail;  // the methods (assignment_impl.hpp) and permanents (permanents.hpp)

template <class T>
void assignment_log_evidence(ConstMatrixView<T> mean, ConstMatrixView<T> var, const double* y,
                             const double* var_exp, const index_t* group_sizes, index_t n_groups,
                             OffsetSpec offset, AssignmentMethod method, QuadratureOptions options,
                             double* out, AssignmentDetails details) {
  const index_t n_cand = mean.rows, n = mean.cols;
  if (n_cand < 1 || n < 1) throw InvalidArgument("mean is empty");
  if (var.rows != n_cand || var.cols != n) throw InvalidArgument("var must have the shape of mean");
  if (y == nullptr || var_exp == nullptr || group_sizes == nullptr || out == nullptr)
    throw InvalidArgument("null pointer argument");
  // A serial check: these matrices are small, and a thread team would cost more.
  for (index_t c = 0; c < n_cand; ++c)
    for (index_t k = 0; k < n; ++k) {
      if (!std::isfinite(static_cast<double>(mean(c, k))))
        throw InvalidArgument("mean holds NaN or infinite values");
      if (!std::isfinite(static_cast<double>(var(c, k))))
        throw InvalidArgument("var holds NaN or infinite values");
    }
  for (index_t j = 0; j < n; ++j) {
    if (!std::isfinite(y[j])) throw InvalidArgument("y holds NaN or infinite values");
    if (!(var_exp[j] >= 0.0) || !std::isfinite(var_exp[j]))
      throw InvalidArgument("var_exp must be finite and >= 0");
  }
  for (index_t c = 0; c < n_cand; ++c)
    for (index_t k = 0; k < n; ++k)
      if (!(var(c, k) >= T(0))) throw InvalidArgument("var must be >= 0");
  if (n_groups < 1) throw InvalidArgument("group_sizes is empty");
  index_t total = 0, kmax = 0;
  double log_perms = 0.0;  // log prod_g k_g!
  for (index_t g = 0; g < n_groups; ++g) {
    if (group_sizes[g] < 1) throw InvalidArgument("group_sizes must be >= 1");
    total += group_sizes[g];
    kmax = std::max(kmax, group_sizes[g]);
    log_perms += log_factorial(group_sizes[g]);
  }
  if (total != n)
    throw InvalidArgument("group_sizes must sum to the number of sites " + std::to_string(n) +
                          ", got " + std::to_string(total));
  const bool flat = !std::isfinite(offset.prior_std);
  if (offset.mode == OffsetMode::Marginal && !flat && !(offset.prior_std > 0.0))
    throw InvalidArgument("the offset prior standard deviation must be > 0 (or inf for flat)");
  if (offset.mode == OffsetMode::Marginal && !std::isfinite(offset.prior_mean))
    throw InvalidArgument("the offset prior mean must be finite");
  if (offset.mode == OffsetMode::Fixed && !std::isfinite(offset.value))
    throw InvalidArgument("the fixed offset must be finite");
  if (method == AssignmentMethod::Enumerate) {
    if (log_perms > std::log(1e12))
      throw InvalidArgument("too many permutations to enumerate (exp(" + std::to_string(log_perms) +
                            ")); use a quadrature method");
  } else {
    if (offset.mode == OffsetMode::Profile)
      throw InvalidArgument(
          "a fitted (profile) offset with marginalised assignments is only "
          "available with enumeration");
    if (method == AssignmentMethod::Quadrature && kmax > kMaxExactPermanent)
      throw InvalidArgument(
          "exact quadrature handles assignment groups of <= " + std::to_string(kMaxExactPermanent) +
          " sites, got " + std::to_string(kmax) + "; use the Bethe approximation");
    if (!(options.step_factor > 0.0) || !(options.tail_nats > 0.0))
      throw InvalidArgument("step_factor and tail_nats must be > 0");
    if (method == AssignmentMethod::Sampling && options.n_samples < 1)
      throw InvalidArgument("n_samples must be >= 1");
    if (method == AssignmentMethod::Banded &&
        (options.band < 0 || options.band > kMaxBand || options.max_band < 1 ||
         options.max_band > kMaxBand || !(options.band_tolerance > 0.0)))
      throw InvalidArgument("band and max_band must be in [0, " + std::to_string(kMaxBand) +
                            "] (max_band >= 1) and band_tolerance > 0");
  }
  const bool want_details = details.marginals || details.site || details.offset_mean;
  if (want_details &&
      (method == AssignmentMethod::Enumerate || method == AssignmentMethod::Sampling))
    throw InvalidArgument(
        "assignment marginals and per-site contributions come from the quadrature methods "
        "(Quadrature, Bethe, Banded), not from enumeration or sampling");
  double pair_entries = 0.0;  // sum_g k_g^2, the per-candidate matrices' size
  for (index_t g = 0; g < n_groups; ++g)
    pair_entries += static_cast<double>(group_sizes[g]) * static_cast<double>(group_sizes[g]);
  check_allocation(static_cast<std::size_t>(pair_entries) * 5 *
                       static_cast<std::size_t>(std::max(1, num_threads())),
                   sizeof(double), "per-candidate residual matrices");
  if (method != AssignmentMethod::Enumerate && method != AssignmentMethod::Banded)
    check_allocation(
        (want_details ? 2 : 1) * (std::size_t{1} << std::min<index_t>(kmax, kMaxExactPermanent)),
        sizeof(double), "permanent dynamic-programming table");
  if (method == AssignmentMethod::Banded)
    check_allocation(static_cast<std::size_t>(kmax + 3)
                         << (2 * std::max(options.band, options.max_band)),
                     sizeof(double), "banded dynamic-programming table");

  std::vector<index_t> gstart(static_cast<std::size_t>(n)), gend(static_cast<std::size_t>(n));
  std::vector<index_t> group_first(static_cast<std::size_t>(n_groups));
  for (index_t g = 0, s = 0; g < n_groups; s += group_sizes[g], ++g) {
    group_first[g] = s;
    for (index_t j = s; j < s + group_sizes[g]; ++j) {
      gstart[j] = s;
      gend[j] = s + group_sizes[g];
    }
  }
  // Only pairs within a group are stored: sum_g k_g^2 entries, not n^2.
  std::vector<index_t> row_off(static_cast<std::size_t>(n));
  index_t row_off_size = 0;
  for (index_t j = 0; j < n; ++j) {
    row_off[j] = row_off_size - gstart[j];
    row_off_size += gend[j] - gstart[j];
  }
  const double w0 = flat ? 0.0 : 1.0 / (offset.prior_std * offset.prior_std);
  const double log_prior_norm = flat ? 0.0 : 0.5 * (std::log(w0) - kLog2Pi);

  // Small problems run on the calling thread: waking a team costs more than the work
  // (and much more on an oversubscribed machine).
  const double work =
      static_cast<double>(n_cand) * static_cast<double>(n) *
      (method == AssignmentMethod::Enumerate
           ? std::exp(log_perms)
           : 100.0 * static_cast<double>(kmax) * static_cast<double>(std::max<index_t>(kmax, 8)));
  const int threads = work < kSerialWork ? 1 : num_threads();

  detail::Problem<T> pr;
  pr.mean = mean;
  pr.var = var;
  pr.y = y;
  pr.var_exp = var_exp;
  pr.group_sizes = group_sizes;
  pr.n_groups = n_groups;
  pr.offset = offset;
  pr.method = method;
  pr.options = options;
  pr.n_cand = n_cand;
  pr.n = n;
  pr.kmax = kmax;
  pr.log_perms = log_perms;
  pr.flat = flat;
  pr.w0 = w0;
  pr.log_prior_norm = log_prior_norm;
  pr.want_details = want_details;
  pr.threads = threads;
  pr.gstart = std::move(gstart);
  pr.gend = std::move(gend);
  pr.group_first = std::move(group_first);
  pr.row_off = std::move(row_off);
  pr.row_off_size = row_off_size;
  if (method == AssignmentMethod::Enumerate)
    enumerate_evidence(pr, out);
  else
    quadrature_evidence(pr, out, details);
}

template void assignment_log_evidence<float>(ConstMatrixView<float>, ConstMatrixView<float>,
                                             const double*, const double*, const index_t*, index_t,
                                             OffsetSpec, AssignmentMethod, QuadratureOptions,
                                             double*, AssignmentDetails);
template void assignment_log_evidence<double>(ConstMatrixView<double>, ConstMatrixView<double>,
                                              const double*, const double*, const index_t*, index_t,
                                              OffsetSpec, AssignmentMethod, QuadratureOptions,
                                              double*, AssignmentDetails);

}  // namespace matchar::nmr
