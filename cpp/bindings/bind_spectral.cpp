// matchar._core.spectral: NMF updates, Poisson deviance and blocked weighted products.
// X may be uint8/uint16/uint32/float32/float64 (dense, read in place) or CSR arrays;
// the factors are float32 or float64. One entry point per kernel, dispatching on dtype.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "arrays.hpp"
#include "gil.hpp"
#include "matchar/spectral/anomaly.hpp"
#include "matchar/spectral/chunk_stats.hpp"
#include "matchar/spectral/nmf.hpp"
#include "matchar/spectral/streaming.hpp"
#include "matchar/spectral/svd.hpp"
#include "spectral_dispatch.hpp"

namespace py = pybind11;
using namespace matchar::bindings;
using matchar::index_t;
namespace sp = matchar::spectral;

namespace {

// (loss, W_new, H_new or None) of one NMF iteration, X dense or CSR.
template <class Counts>
py::tuple nmf_update_of(const std::string& loss, const Counts& x, const py::array& W,
                        const py::array& H, const OptArray& pixel_mask,
                        const OptArray& channel_mask, bool update_H, bool with_loss, int sweeps) {
  if (loss != "kl" && loss != "frobenius")
    throw py::value_error("loss must be 'kl' or 'frobenius', got '" + loss + "'");
  return with_factor_views(x, W, H, "W", [&](auto xv, auto wv, auto hv) {
    using T = element_t<decltype(wv)>;
    const sp::Masks m = masks_of(pixel_mask, channel_mask, xv.rows, xv.cols);
    const auto W_out = output_matrix<T>(wv.rows, wv.cols, "W");
    const auto H_out = output_matrix<T>(update_H ? hv.rows : 0, update_H ? hv.cols : 0, "H");
    T* ho = update_H ? H_out.ptr : nullptr;
    const double value = without_gil([&] {
      return loss == "kl" ? MATCHAR_SPECTRAL_KERNEL(kl_update)(xv, wv, hv, m, update_H, with_loss,
                                                               W_out.ptr, ho)
                          : MATCHAR_SPECTRAL_KERNEL(hals_update)(xv, wv, hv, m, update_H, W_out.ptr,
                                                                 ho, sweeps);
    });
    return py::tuple(py::make_tuple(value, W_out.array,
                                    update_H ? py::object(H_out.array) : py::object(py::none())));
  });
}

py::tuple nmf_update(const std::string& loss, const py::array& X, const py::array& W,
                     const py::array& H, const OptArray& pixel_mask, const OptArray& channel_mask,
                     bool update_H, bool with_loss, int sweeps) {
  return nmf_update_of(loss, DenseCounts{X}, W, H, pixel_mask, channel_mask, update_H, with_loss,
                       sweeps);
}

py::tuple nmf_update_csr(const std::string& loss, const py::array& data, const py::array& indices,
                         const py::array& indptr, index_t n_cols, const py::array& W,
                         const py::array& H, const OptArray& pixel_mask,
                         const OptArray& channel_mask, bool update_H, bool with_loss, int sweeps) {
  return nmf_update_of(loss, CsrCounts{data, indices, indptr, n_cols}, W, H, pixel_mask,
                       channel_mask, update_H, with_loss, sweeps);
}

// (loss, W_new, numerator (K x C float64), colsum (K float64)) of one KL pass without the
// H update, X dense or CSR: the per-chunk statistics that callers reduce over chunks.
template <class Counts>
py::tuple nmf_kl_stats_of(const Counts& x, const py::array& W, const py::array& H,
                          const OptArray& pixel_mask, const OptArray& channel_mask,
                          bool with_loss) {
  return with_factor_views(x, W, H, "W", [&](auto xv, auto wv, auto hv) {
    const sp::Masks m = masks_of(pixel_mask, channel_mask, xv.rows, xv.cols);
    return kl_stats_result(wv, hv, "W", [&](auto* wo, double* num, double* colsum) {
      return MATCHAR_SPECTRAL_KERNEL(kl_update_stats)(xv, wv, hv, m, with_loss, wo, num, colsum);
    });
  });
}

py::tuple nmf_kl_stats(const py::array& X, const py::array& W, const py::array& H,
                       const OptArray& pixel_mask, const OptArray& channel_mask, bool with_loss) {
  return nmf_kl_stats_of(DenseCounts{X}, W, H, pixel_mask, channel_mask, with_loss);
}

py::tuple nmf_kl_stats_csr(const py::array& data, const py::array& indices, const py::array& indptr,
                           index_t n_cols, const py::array& W, const py::array& H,
                           const OptArray& pixel_mask, const OptArray& channel_mask,
                           bool with_loss) {
  return nmf_kl_stats_of(CsrCounts{data, indices, indptr, n_cols}, W, H, pixel_mask, channel_mask,
                         with_loss);
}

// (sum of squares, W_new, W^T X (K x C float64), W^T W (K x K float64)) of one HALS pass
// without the H sweep, dense X: the per-chunk statistics of the Frobenius solver.
py::tuple nmf_hals_stats(const py::array& X, const py::array& W, const py::array& H,
                         const OptArray& pixel_mask, const OptArray& channel_mask, int sweeps) {
  return with_factor_views(DenseCounts{X}, W, H, "W", [&](auto xv, auto wv, auto hv) {
    using T = element_t<decltype(wv)>;
    const sp::Masks m = masks_of(pixel_mask, channel_mask, xv.rows, xv.cols);
    const auto W_out = output_matrix<T>(wv.rows, wv.cols, "W");
    const auto WtX = output_matrix<double>(hv.rows, hv.cols, "W^T X");
    const auto WtW = output_matrix<double>(hv.rows, hv.rows, "W^T W");
    const double sumsq = without_gil(
        [&] { return sp::hals_update_stats(xv, wv, hv, m, sweeps, W_out.ptr, WtX.ptr, WtW.ptr); });
    return py::tuple(py::make_tuple(sumsq, W_out.array, WtX.array, WtW.array));
  });
}

// Poisson deviance per pixel (float64) of X against W H, X dense or CSR.
template <class Counts>
py::array_t<double> poisson_deviance_of(const Counts& x, const py::array& W, const py::array& H,
                                        const OptArray& pixel_mask, const OptArray& channel_mask) {
  return with_factor_views(x, W, H, "W", [&](auto xv, auto wv, auto hv) {
    const sp::Masks m = masks_of(pixel_mask, channel_mask, xv.rows, xv.cols);
    const auto out = output_vector<double>(xv.rows);
    without_gil([&] { MATCHAR_SPECTRAL_KERNEL(poisson_deviance)(xv, wv, hv, m, out.ptr); });
    return out.array;
  });
}

py::array_t<double> poisson_deviance(const py::array& X, const py::array& W, const py::array& H,
                                     const OptArray& pixel_mask, const OptArray& channel_mask) {
  return poisson_deviance_of(DenseCounts{X}, W, H, pixel_mask, channel_mask);
}

py::array_t<double> poisson_deviance_csr(const py::array& data, const py::array& indices,
                                         const py::array& indptr, index_t n_cols,
                                         const py::array& W, const py::array& H,
                                         const OptArray& pixel_mask, const OptArray& channel_mask) {
  return poisson_deviance_of(CsrCounts{data, indices, indptr, n_cols}, W, H, pixel_mask,
                             channel_mask);
}

// (S, M, window, start) per pixel for the pixel scale and (box > 1) the box scale: see
// matchar/spectral/anomaly.hpp; the box-scale arrays are empty when box == 1.
template <class Call>
py::tuple window_scan_result(index_t N, int box, Call&& call) {
  const index_t NB = box > 1 ? N : 0;
  py::array_t<double> S1(N), M1(N), S2(NB), M2(NB);
  py::array_t<std::int32_t> w1(N), c1(N), w2(NB), c2(NB);
  const sp::WindowScanOut one{S1.mutable_data(), M1.mutable_data(), w1.mutable_data(),
                              c1.mutable_data()};
  const sp::WindowScanOut boxed{S2.mutable_data(), M2.mutable_data(), w2.mutable_data(),
                                c2.mutable_data()};
  {
    matchar_py::ReleaseGil release;
    call(one, boxed);
  }
  return py::tuple(py::make_tuple(S1, M1, w1, c1, S2, M2, w2, c2));
}

sp::WindowScanArgs window_scan_args(index_t N, index_t C, const std::optional<py::array>& channels,
                                    const std::optional<py::array>& pixels, index_t group,
                                    const std::vector<index_t>& windows, index_t nav_rows,
                                    index_t nav_cols, int box) {
  sp::WindowScanArgs a;
  a.channels = vector_ptr<std::uint8_t>(channels, C, "channel mask");
  a.pixels = vector_ptr<std::uint8_t>(pixels, N, "pixel mask");
  a.group = group;
  a.windows = windows.data();
  a.n_windows = static_cast<int>(windows.size());
  a.nav_rows = nav_rows;
  a.nav_cols = nav_cols;
  a.box = box;
  return a;
}

py::tuple residual_window_scan(const py::array& X, const py::array& W, const py::array& Hb,
                               const std::optional<py::array>& channels,
                               const std::optional<py::array>& pixels, index_t group,
                               const std::vector<index_t>& windows, index_t nav_rows,
                               index_t nav_cols, int box) {
  return dispatch_counts(X, [&](auto tx) {
    using TX = typename decltype(tx)::type;
    const auto xv = matrix_view<TX>(X, "X");
    const auto wv = matrix_view<double>(W, "W");
    const auto hv = matrix_view<double>(Hb, "Hb");
    const auto a = window_scan_args(xv.rows, xv.cols, channels, pixels, group, windows, nav_rows,
                                    nav_cols, box);
    return window_scan_result(xv.rows, box, [&](sp::WindowScanOut one, sp::WindowScanOut boxed) {
      sp::residual_window_scan<TX>(xv, wv, hv, a, one, boxed);
    });
  });
}

py::tuple residual_window_scan_csr(const py::array& data, const py::array& indices,
                                   const py::array& indptr, index_t n_cols, const py::array& W,
                                   const py::array& Hb, const std::optional<py::array>& channels,
                                   const std::optional<py::array>& pixels, index_t group,
                                   const std::vector<index_t>& windows, index_t nav_rows,
                                   index_t nav_cols, int box) {
  return dispatch_csr(data, indices, [&](auto tx, auto ti) {
    using TX = typename decltype(tx)::type;
    using TI = typename decltype(ti)::type;
    const auto wv = matrix_view<double>(W, "W");
    const auto hv = matrix_view<double>(Hb, "Hb");
    const auto xv = csr_view<TX, TI>(data, indices, indptr, wv.rows, n_cols);
    const auto a = window_scan_args(xv.rows, xv.cols, channels, pixels, group, windows, nav_rows,
                                    nav_cols, box);
    return window_scan_result(xv.rows, box, [&](sp::WindowScanOut one, sp::WindowScanOut boxed) {
      sp::residual_window_scan_csr<TX, TI>(xv, wv, hv, a, one, boxed);
    });
  });
}

py::tuple weighted_sums(const py::array& X, const std::optional<py::array>& r,
                        const std::optional<py::array>& c) {
  return dispatch_counts(X, [&](auto tx) {
    using TX = typename decltype(tx)::type;
    const auto xv = matrix_view<TX>(X, "X");
    const double* rp = vector_ptr<double>(r, xv.rows, "row weights");
    const double* cp = vector_ptr<double>(c, xv.cols, "column weights");
    py::array_t<double> rows(xv.rows), cols(xv.cols);
    double* ro = rows.mutable_data();
    double* co = cols.mutable_data();
    double sumsq;
    {
      matchar_py::ReleaseGil release;
      sumsq = sp::weighted_sums<TX>(xv, rp, cp, ro, co);
    }
    return py::tuple(py::make_tuple(rows, cols, sumsq));
  });
}

// Dispatches on the dtypes of X and V (named W in dtype errors, as before), makes the views
// and the weight vectors, and returns f(xv, r, c, vv, offset).
template <class F>
auto with_weighted_views(const py::array& X, const OptArray& r, const OptArray& c,
                         const py::array& V, const OptArray& offset, F&& f) {
  return dispatch_counts(X, [&](auto tx) {
    using TX = typename decltype(tx)::type;
    return dispatch_factor(V, [&](auto tf) {
      using T = typename decltype(tf)::type;
      const auto xv = matrix_view<TX>(X, "X");
      const auto vv = matrix_view<T>(V, "V");
      const double* rp = vector_ptr<double>(r, xv.rows, "row weights");
      const double* cp = vector_ptr<double>(c, xv.cols, "column weights");
      const double* op = vector_ptr<double>(offset, vv.cols, "offset");
      return f(xv, rp, cp, vv, op);
    });
  });
}

py::array weighted_project(const py::array& X, const OptArray& r, const OptArray& c,
                           const py::array& V, const OptArray& offset) {
  return with_weighted_views(X, r, c, V, offset, [](auto xv, auto rp, auto cp, auto vv, auto op) {
    const auto Y = output_matrix<element_t<decltype(vv)>>(xv.rows, vv.cols, "projection");
    without_gil([&] { sp::weighted_project(xv, rp, cp, vv, op, Y.ptr); });
    return py::array(Y.array);
  });
}

py::tuple weighted_gram_apply(const py::array& X, const OptArray& r, const OptArray& c,
                              const py::array& V, const OptArray& offset) {
  return with_weighted_views(X, r, c, V, offset, [](auto xv, auto rp, auto cp, auto vv, auto op) {
    const auto Z = output_matrix<double>(xv.cols, vv.cols, "Gram product");
    const auto s = output_vector<double>(vv.cols);
    without_gil([&] { sp::weighted_gram_apply(xv, rp, cp, vv, op, Z.ptr, s.ptr); });
    return py::tuple(py::make_tuple(Z.array, s.array));
  });
}

// (sum x^2, X^T W (C x K), W^T W (K x K)) of a block, for Frobenius NMF over chunks.
py::tuple nmf_frobenius_stats(const py::array& X, const py::array& W, const OptArray& pixel_mask,
                              const OptArray& channel_mask) {
  return with_factor_views(DenseCounts{X}, W, "W", [&](auto xv, auto wv) {
    const sp::Masks m = masks_of(pixel_mask, channel_mask, xv.rows, xv.cols);
    const auto XtW = output_matrix<double>(xv.cols, wv.cols, "X^T W");
    const auto WtW = output_matrix<double>(wv.cols, wv.cols, "W^T W");
    const double sumsq =
        without_gil([&] { return sp::frobenius_stats(xv, wv, m, XtW.ptr, WtW.ptr); });
    return py::tuple(py::make_tuple(sumsq, XtW.array, WtW.array));
  });
}

// Streaming objects: one mutex per object, so that Python threads sharing one object
// (with the GIL released during updates) take turns instead of racing. The mutex is only
// ever taken with the GIL released: a thread holding it polls for Ctrl-C, which takes the
// GIL, so a thread waiting for it must not hold the GIL (that was a deadlock).
template <class T>
struct PyStreamingPCA {
  sp::StreamingPCA<T> pca;
  std::mutex lock;
  PyStreamingPCA(index_t c, index_t k, bool poisson, bool center, index_t over, std::uint64_t seed)
      : pca(c, k, poisson, center, over, seed) {}

  void partial_fit(const py::array& X) {
    dispatch_counts(X, [&](auto tx) {
      using TX = typename decltype(tx)::type;
      const auto xv = matrix_view<TX>(X, "X");
      locked([&] { pca.template partial_fit<TX>(xv); });
    });
  }
  // f() under the object's mutex, with the GIL released while waiting and working.
  template <class F>
  auto locked(F&& f) {
    matchar_py::ReleaseGil release;
    std::lock_guard<std::mutex> g(lock);
    return f();
  }
  py::array_t<double> vector_query(void (sp::StreamingPCA<T>::*f)(double*), index_t n) {
    py::array_t<double> out(n);
    double* o = out.mutable_data();
    locked([&] { (pca.*f)(o); });
    return out;
  }
  py::array_t<double> components() {
    auto out = new_matrix<double>(pca.n_components(), pca.n_channels(), "components");
    double* o = out.mutable_data();
    locked([&] { pca.components(o); });
    return out;
  }
  py::array_t<double> transform(const py::array& X) {
    return dispatch_counts(X, [&](auto tx) {
      using TX = typename decltype(tx)::type;
      const auto xv = matrix_view<TX>(X, "X");
      auto out = new_matrix<double>(xv.rows, pca.n_components(), "scores");
      double* o = out.mutable_data();
      locked([&] { pca.template transform<TX>(xv, o); });
      return out;
    });
  }
};

template <class T>
struct PyOnlineNMF {
  sp::OnlineNMF<T> nmf;
  mutable std::mutex lock;
  PyOnlineNMF(index_t c, index_t k, double rho, int inner, int init, std::uint64_t seed,
              const std::string& loss)
      : nmf(c, k, rho, inner, init, seed, frobenius_loss(loss)) {}
  static bool frobenius_loss(const std::string& loss) {
    if (loss != "kl" && loss != "frobenius")
      throw py::value_error("loss must be 'kl' or 'frobenius', got '" + loss + "'");
    return loss == "frobenius";
  }

  void set_components(const py::array& H) {
    const auto hv = matrix_view<T>(H, "H");
    if (hv.rows != nmf.n_components() || hv.cols != nmf.n_channels())
      throw py::value_error("H must have shape (" + std::to_string(nmf.n_components()) + ", " +
                            std::to_string(nmf.n_channels()) + ")");
    std::vector<T> h(static_cast<std::size_t>(hv.rows * hv.cols));
    for (index_t k = 0; k < hv.rows; ++k)
      for (index_t c = 0; c < hv.cols; ++c) h[k * hv.cols + c] = hv(k, c);
    locked([&] { nmf.set_components(h.data()); });
  }
  py::tuple partial_fit(const py::array& X) {
    return dispatch_counts(X, [&](auto tx) {
      using TX = typename decltype(tx)::type;
      const auto xv = matrix_view<TX>(X, "X");
      auto maps = new_matrix<T>(xv.rows, nmf.n_components(), "maps");
      T* m = maps.mutable_data();
      const double loss = locked([&] { return nmf.template partial_fit<TX>(xv, m); });
      return py::tuple(py::make_tuple(loss, maps));
    });
  }
  py::array_t<T> transform(const py::array& X, int n_iter) const {
    return dispatch_counts(X, [&](auto tx) {
      using TX = typename decltype(tx)::type;
      const auto xv = matrix_view<TX>(X, "X");
      auto maps = new_matrix<T>(xv.rows, nmf.n_components(), "maps");
      T* m = maps.mutable_data();
      locked([&] { nmf.template transform<TX>(xv, n_iter, m); });
      return maps;
    });
  }
  py::array_t<T> components() const {
    auto out = new_matrix<T>(nmf.n_components(), nmf.n_channels(), "components");
    T* o = out.mutable_data();
    locked([&] { nmf.components(o); });
    return out;
  }
  // See PyStreamingPCA::locked.
  template <class F>
  auto locked(F&& f) const {
    matchar_py::ReleaseGil release;
    std::lock_guard<std::mutex> g(lock);
    return f();
  }
};

template <class T>
void register_streaming(py::module_& m, const char* pca_name, const char* nmf_name) {
  using P = PyStreamingPCA<T>;
  py::class_<P>(m, pca_name, "Incremental (Poisson-weighted) PCA; see streaming.hpp")
      .def(py::init<index_t, index_t, bool, bool, index_t, std::uint64_t>(), py::arg("n_channels"),
           py::arg("n_components"), py::arg("poisson") = true, py::arg("center") = true,
           py::arg("n_oversamples") = 10, py::arg("seed") = 0)
      .def("partial_fit", &P::partial_fit, py::arg("X"))
      .def("components", &P::components)
      .def("explained_variance",
           [](P& p) {
             return p.vector_query(&sp::StreamingPCA<T>::explained_variance, p.pca.n_components());
           })
      .def("explained_variance_ratio",
           [](P& p) {
             return p.vector_query(&sp::StreamingPCA<T>::explained_variance_ratio,
                                   p.pca.n_components());
           })
      .def("singular_values",
           [](P& p) {
             return p.vector_query(&sp::StreamingPCA<T>::singular_values, p.pca.n_components());
           })
      .def("mean",
           [](P& p) { return p.vector_query(&sp::StreamingPCA<T>::mean, p.pca.n_channels()); })
      .def("spectrum_weights",
           [](P& p) {
             return p.vector_query(&sp::StreamingPCA<T>::spectrum_weights, p.pca.n_channels());
           })
      .def("total_variance", [](P& p) { return p.locked([&] { return p.pca.total_variance(); }); })
      .def("transform", &P::transform, py::arg("X"))
      .def_property_readonly("n_samples_seen",
                             [](P& p) { return p.locked([&] { return p.pca.n_samples_seen(); }); })
      .def_property_readonly("n_channels", [](P& p) { return p.pca.n_channels(); });

  using N = PyOnlineNMF<T>;
  py::class_<N>(m, nmf_name, "Online KL NMF (Lefevre et al. 2011); see streaming.hpp")
      .def(py::init<index_t, index_t, double, int, int, std::uint64_t, const std::string&>(),
           py::arg("n_channels"), py::arg("n_components"), py::arg("forget_factor") = 1.0,
           py::arg("inner_iter") = 20, py::arg("init_iter") = 100, py::arg("seed") = 0,
           py::arg("loss") = "kl")
      .def("set_components", &N::set_components, py::arg("H"))
      .def("partial_fit", &N::partial_fit, py::arg("X"))
      .def("transform", &N::transform, py::arg("X"), py::arg("n_iter"))
      .def("components", &N::components)
      .def_property_readonly("n_samples_seen",
                             [](N& n) { return n.locked([&] { return n.nmf.n_samples_seen(); }); })
      .def_property_readonly("n_batches",
                             [](N& n) { return n.locked([&] { return n.nmf.n_batches(); }); })
      .def_property_readonly("n_channels", [](N& n) { return n.nmf.n_channels(); });
}

}  // namespace

void register_spectral(py::module_& m) {
  m.def("nmf_frobenius_stats", &nmf_frobenius_stats, py::arg("X"), py::arg("W"),
        py::arg("pixel_mask") = py::none(), py::arg("channel_mask") = py::none());
  register_streaming<float>(m, "StreamingPCA_float32", "OnlineNMF_float32");
  register_streaming<double>(m, "StreamingPCA_float64", "OnlineNMF_float64");
  // One entry per estimator: the dtype of its factors picks the class above.
  m.def(
      "StreamingPCA",
      [](index_t n_channels, index_t n_components, bool poisson, bool center, index_t n_oversamples,
         std::uint64_t seed, const py::object& dtype) -> py::object {
        return dispatch_real_dtype(dtype, [&](auto tag) -> py::object {
          using T = typename decltype(tag)::type;
          // (not movable: it holds a mutex) a new object, owned by Python
          return py::cast(
              new PyStreamingPCA<T>(n_channels, n_components, poisson, center, n_oversamples, seed),
              py::return_value_policy::take_ownership);
        });
      },
      py::arg("n_channels"), py::arg("n_components"), py::arg("poisson") = true,
      py::arg("center") = true, py::arg("n_oversamples") = 10, py::arg("seed") = 0,
      py::arg("dtype") = "float64",
      "A StreamingPCA_float32 or StreamingPCA_float64 for dtype (float32 or float64).");
  m.def(
      "OnlineNMF",
      [](index_t n_channels, index_t n_components, double forget_factor, int inner_iter,
         int init_iter, std::uint64_t seed, const std::string& loss,
         const py::object& dtype) -> py::object {
        return dispatch_real_dtype(dtype, [&](auto tag) -> py::object {
          using T = typename decltype(tag)::type;
          return py::cast(new PyOnlineNMF<T>(n_channels, n_components, forget_factor, inner_iter,
                                             init_iter, seed, loss),
                          py::return_value_policy::take_ownership);
        });
      },
      py::arg("n_channels"), py::arg("n_components"), py::arg("forget_factor") = 1.0,
      py::arg("inner_iter") = 20, py::arg("init_iter") = 100, py::arg("seed") = 0,
      py::arg("loss") = "kl", py::arg("dtype") = "float64",
      "An OnlineNMF_float32 or OnlineNMF_float64 for dtype (float32 or float64).");
  m.def("nmf_update", &nmf_update, py::arg("loss"), py::arg("X"), py::arg("W"), py::arg("H"),
        py::arg("pixel_mask") = py::none(), py::arg("channel_mask") = py::none(),
        py::arg("update_H") = true, py::arg("with_loss") = true, py::arg("sweeps") = 1);
  m.def("nmf_update_csr", &nmf_update_csr, py::arg("loss"), py::arg("data"), py::arg("indices"),
        py::arg("indptr"), py::arg("n_cols"), py::arg("W"), py::arg("H"),
        py::arg("pixel_mask") = py::none(), py::arg("channel_mask") = py::none(),
        py::arg("update_H") = true, py::arg("with_loss") = true, py::arg("sweeps") = 1);
  m.def("nmf_hals_stats", &nmf_hals_stats, py::arg("X"), py::arg("W"), py::arg("H"),
        py::arg("pixel_mask") = py::none(), py::arg("channel_mask") = py::none(),
        py::arg("sweeps") = 1);
  m.def("nmf_kl_stats", &nmf_kl_stats, py::arg("X"), py::arg("W"), py::arg("H"),
        py::arg("pixel_mask") = py::none(), py::arg("channel_mask") = py::none(),
        py::arg("with_loss") = true);
  m.def("nmf_kl_stats_csr", &nmf_kl_stats_csr, py::arg("data"), py::arg("indices"),
        py::arg("indptr"), py::arg("n_cols"), py::arg("W"), py::arg("H"),
        py::arg("pixel_mask") = py::none(), py::arg("channel_mask") = py::none(),
        py::arg("with_loss") = true);
  m.def("poisson_deviance", &poisson_deviance, py::arg("X"), py::arg("W"), py::arg("H"),
        py::arg("pixel_mask") = py::none(), py::arg("channel_mask") = py::none());
  m.def("poisson_deviance_csr", &poisson_deviance_csr, py::arg("data"), py::arg("indices"),
        py::arg("indptr"), py::arg("n_cols"), py::arg("W"), py::arg("H"),
        py::arg("pixel_mask") = py::none(), py::arg("channel_mask") = py::none());
  m.def("residual_window_scan", &residual_window_scan, py::arg("X"), py::arg("W"), py::arg("Hb"),
        py::arg("channel_mask").none(true), py::arg("pixel_mask").none(true), py::arg("group"),
        py::arg("windows"), py::arg("nav_rows"), py::arg("nav_cols"), py::arg("box") = 1,
        "Per pixel (and box of pixels) the channel window of largest Poisson excess over "
        "W @ Hb: (S, M, window, start) per scale.");
  m.def("residual_window_scan_csr", &residual_window_scan_csr, py::arg("data"), py::arg("indices"),
        py::arg("indptr"), py::arg("n_cols"), py::arg("W"), py::arg("Hb"),
        py::arg("channel_mask").none(true), py::arg("pixel_mask").none(true), py::arg("group"),
        py::arg("windows"), py::arg("nav_rows"), py::arg("nav_cols"), py::arg("box") = 1,
        "residual_window_scan for CSR counts.");
  m.def("weighted_sums", &weighted_sums, py::arg("X"), py::arg("r") = py::none(),
        py::arg("c") = py::none());
  m.def("weighted_project", &weighted_project, py::arg("X"), py::arg("r"), py::arg("c"),
        py::arg("V"), py::arg("offset") = py::none());
  m.def("weighted_gram_apply", &weighted_gram_apply, py::arg("X"), py::arg("r"), py::arg("c"),
        py::arg("V"), py::arg("offset") = py::none());
}
