// The blocked NMF kernels for x86-64-v2 (compiled with -march=x86-64-v2; see
// nmf_blocked.hpp).
#define MATCHAR_ISA x86_64_v2
#include "../nmf_blocked_impl.hpp"
