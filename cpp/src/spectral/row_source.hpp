// Rows of a counts matrix converted to the factor type, for the blocked kernels
// (RowSource in nmf_blocked.hpp). Baseline code only: not for the level files.
#pragma once

#include <cstdint>
#include <type_traits>

#include "matchar/common.hpp"
#include "nmf_blocked.hpp"

namespace matchar::spectral::detail {

template <class TX, class T>
inline void load_row(ConstMatrixView<TX> X, index_t i, T* __restrict out) {
  const TX* src = X.data + i * X.row_stride;
  const index_t cs = X.col_stride, C = X.cols;
  if (cs == 1) {
#pragma omp simd
    for (index_t c = 0; c < C; ++c) out[c] = static_cast<T>(src[c]);
  } else {
    for (index_t c = 0; c < C; ++c) out[c] = static_cast<T>(src[c * cs]);
  }
}

// X as a RowSource (nmf_blocked.hpp).
template <class T, class TX>
RowSource<T> row_source(ConstMatrixView<TX> X) {
  return {X.data,
          X.rows,
          X.cols,
          X.row_stride,
          X.col_stride,
          [](const RowSource<T>& v, index_t i, T* out) {
            load_row(ConstMatrixView<TX>{static_cast<const TX*>(v.data), v.n_rows, v.n_cols,
                                         v.row_stride, v.col_stride},
                     i, out);
          },
          std::is_same_v<TX, T> && X.col_stride == 1 ? reinterpret_cast<const T*>(X.data)
                                                     : nullptr,
          X.col_stride != 1                      ? 0
          : std::is_same_v<TX, std::uint8_t>  ? kCountsU8
          : std::is_same_v<TX, std::uint16_t> ? kCountsU16
          : std::is_same_v<TX, std::uint32_t> ? kCountsU32
                                              : 0};
}

}  // namespace matchar::spectral::detail
