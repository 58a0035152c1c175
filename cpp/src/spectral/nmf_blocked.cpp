// The level table of the blocked NMF kernels, and the baseline services they call.
#include "nmf_blocked.hpp"

#include <string>

#include "blocks.hpp"

#if !defined(MATCHAR_CPU_DISPATCH)
// One level: the kernels compiled with the library's own flags.
#define MATCHAR_ISA generic
#include "nmf_blocked_impl.hpp"
#undef MATCHAR_ISA
#endif

namespace matchar::spectral::detail {

static_assert(kMaxSmallK == 8, "nmf_blocked_impl.hpp's kl_small / hals_small cover K = 1..8");

void run_blocks(index_t n_blocks, int n_threads, void (*body)(void*, index_t, int), void* ctx) {
  for_blocks(n_blocks, n_threads, [&](index_t b, int tid) { body(ctx, b, tid); });
}

// Looked up at every pass (a few string comparisons): set_cpu_level may change it.
const BlockedTable& blocked_kernels() {
  const std::string level = cpu_level();  // throws for a bad MATCHAR_CPU_LEVEL
#if defined(MATCHAR_CPU_DISPATCH)
  if (level == "avx512") return x86_64_v4::blocked_table();
  if (level == "avx2") return x86_64_v3::blocked_table();
  return x86_64_v2::blocked_table();
#else
  (void)level;
  return generic::blocked_table();
#endif
}

}  // namespace matchar::spectral::detail
