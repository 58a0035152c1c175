/* mask_avx512.c: run a process as if its CPU had no AVX-512 (nor AVX-VNNI).
 *
 * LD_PRELOAD library for x86-64 Linux. Its constructor turns on CPUID faulting
 * (arch_prctl(ARCH_SET_CPUID, 0); needs the "cpuid_fault" flag in /proc/cpuinfo), so
 * every CPUID instruction of the process and of the threads it starts later traps to a
 * SIGSEGV handler. The handler executes the real CPUID with faulting briefly off and
 * clears the AVX-512, AVX-VNNI and AVX512-BF16 feature bits before returning the result.
 * Libraries that pick their kernels from CPUID at run time (onnxruntime's MLAS, NumPy,
 * OpenBLAS, libgcc's __builtin_cpu_supports) then take their AVX2 paths, as on a CPU
 * without AVX-512. The instructions themselves still run on this CPU, at its clock and
 * memory bandwidth: this measures the AVX2 code paths, not another machine.
 *
 * Build and use (benchmarks/avx2_only.sh does both):
 *   cc -O2 -shared -fPIC -o mask_avx512.so mask_avx512.c -ldl
 *   LD_PRELOAD=./mask_avx512.so python ...
 * MASK_AVX512_REPORT=1 prints, at exit, which loaded objects asked CPUID leaf 7.
 * A handler installed later for SIGSEGV (e.g. Python's faulthandler, pytest's
 * faulthandler plugin) would replace this one: run pytest with -p no:faulthandler.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef ARCH_GET_CPUID
#define ARCH_GET_CPUID 0x1011
#define ARCH_SET_CPUID 0x1012
#endif

/* CPUID.(EAX=7,ECX=0): EBX AVX512F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31 */
#define MASK_7_0_EBX                                                                          \
  ((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | \
   (1u << 31))
/* ECX: VBMI 1, VBMI2 6, VNNI 11, BITALG 12, VPOPCNTDQ 14 */
#define MASK_7_0_ECX ((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14))
/* EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, FP16 23 */
#define MASK_7_0_EDX ((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23))
/* CPUID.(EAX=7,ECX=1): EAX AVX-VNNI 4, AVX512-BF16 5 */
#define MASK_7_1_EAX ((1u << 4) | (1u << 5))

#define MAX_CALLERS 64
static uintptr_t callers[MAX_CALLERS];
static volatile sig_atomic_t n_callers = 0;
static volatile sig_atomic_t n_traps = 0;

static long set_cpuid(int enabled) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

static void on_sigsegv(int sig, siginfo_t* info, void* context) {
  (void)info;
  ucontext_t* uc = (ucontext_t*)context;
  greg_t* r = uc->uc_mcontext.gregs;
  const unsigned char* ip = (const unsigned char*)r[REG_RIP];
  if (ip[0] != 0x0f || ip[1] != 0xa2) {
    /* not CPUID: a real fault. Default action, and the instruction runs again. */
    signal(sig, SIG_DFL);
    return;
  }
  unsigned leaf = (unsigned)r[REG_RAX], sub = (unsigned)r[REG_RCX];
  unsigned a, b, c, d;
  set_cpuid(1);
  __cpuid_count(leaf, sub, a, b, c, d);
  set_cpuid(0);
  if (leaf == 7 && sub == 0) {
    b &= ~MASK_7_0_EBX;
    c &= ~MASK_7_0_ECX;
    d &= ~MASK_7_0_EDX;
    if (n_callers < MAX_CALLERS) callers[n_callers++] = (uintptr_t)ip;
  } else if (leaf == 7 && sub == 1) {
    a &= ~MASK_7_1_EAX;
  }
  n_traps++;
  r[REG_RAX] = a; /* CPUID zero-extends into the 64-bit registers */
  r[REG_RBX] = b;
  r[REG_RCX] = c;
  r[REG_RDX] = d;
  r[REG_RIP] += 2;
}

__attribute__((constructor)) static void mask_avx512_init(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigsegv;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, NULL) != 0 || set_cpuid(0) != 0) {
    fprintf(stderr,
            "mask_avx512: CPUID faulting is not available on this CPU/kernel "
            "(no cpuid_fault flag); refusing to run unmasked\n");
    _exit(2);
  }
}

__attribute__((destructor)) static void mask_avx512_report(void) {
  const char* env = getenv("MASK_AVX512_REPORT");
  if (env == NULL || env[0] == '\0' || env[0] == '0') return;
  fprintf(stderr, "mask_avx512: %d CPUID traps; leaf 7 masked for:\n", (int)n_traps);
  for (int i = 0; i < n_callers; i++) {
    Dl_info di;
    const char* name = "?";
    if (dladdr((void*)callers[i], &di) && di.dli_fname) name = di.dli_fname;
    int seen = 0;
    for (int j = 0; j < i && !seen; j++) {
      Dl_info dj;
      if (dladdr((void*)callers[j], &dj) && dj.dli_fname && strcmp(dj.dli_fname, name) == 0)
        seen = 1;
    }
    if (!seen) fprintf(stderr, "  %s\n", name);
  }
}
