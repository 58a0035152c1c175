// The blocked NMF kernels for x86-64-v3 (compiled with -march=x86-64-v3; see
// nmf_blocked.hpp).
#define MATCHAR_ISA x86_64_v3
#include "../nmf_blocked_impl.hpp"
