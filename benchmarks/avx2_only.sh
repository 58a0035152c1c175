#!/usr/bin/env bash
# Run a command as if this x86-64 CPU had no AVX-512: benchmarks/avx2_only.sh CMD [ARGS...]
#
# Hides the AVX-512, AVX-VNNI and AVX512-BF16 CPUID bits from the command (and everything
# it starts) with benchmarks/tools/mask_avx512.c, an LD_PRELOAD library that traps CPUID
# (CPUID faulting, Linux's arch_prctl(ARCH_SET_CPUID)), and from glibc's own string
# functions with GLIBC_TUNABLES. onnxruntime, NumPy, OpenBLAS and matchar's dispatched
# kernels then run their AVX2 code on this CPU. Build matchar for the same level
# (-C cmake.define.MATCHAR_ARCH=x86-64-v3) so that no AVX-512 is compiled in either.
# With pytest, add -p no:faulthandler (its SIGSEGV handler would replace the trap's).
# Needs the cpuid_fault flag in /proc/cpuinfo (Intel since Ivy Bridge, recent AMD such as
# the Zen 4 it was measured on, and KVM guests of such hosts).
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: benchmarks/avx2_only.sh COMMAND [ARGS...]" >&2
    exit 2
fi
if ! grep -qw cpuid_fault /proc/cpuinfo; then
    echo "avx2_only.sh: this CPU or kernel has no CPUID faulting (no cpuid_fault in /proc/cpuinfo)" >&2
    exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lib=$(mktemp "${TMPDIR:-/tmp}/mask_avx512.XXXXXX.so")
trap 'rm -f "$lib"' EXIT
${CC:-cc} -O2 -shared -fPIC -o "$lib" "$here/tools/mask_avx512.c" -ldl
export GLIBC_TUNABLES="glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD${GLIBC_TUNABLES:+:$GLIBC_TUNABLES}"
LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$lib" "$@"
