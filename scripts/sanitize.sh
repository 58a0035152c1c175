#!/usr/bin/env bash
# Build matchar with AddressSanitizer + UndefinedBehaviorSanitizer into its own venv and
# run the test suite under it. Usage: scripts/sanitize.sh [pytest args...]
#   e.g. scripts/sanitize.sh tests/gp -q
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${SANITIZE_VENV:-$root/build/venv-sanitize}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q scikit-build-core pybind11 cmeel-eigen ninja
# Without build isolation nothing else brings ninja, and CMake's Makefile generator builds
# one file at a time: the instrumented build is the slowest step of CI.
export CMAKE_GENERATOR="${CMAKE_GENERATOR:-Ninja}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
MATCHAR_SANITIZE=ON "$venv/bin/pip" install -q --no-build-isolation \
    -C build-dir="$root/build/sanitize" "$root[test]"

# The Python interpreter is not instrumented: the ASan runtime must be loaded first.
libasan=$(${CXX:-g++} -print-file-name=libasan.so)
libubsan=$(${CXX:-g++} -print-file-name=libubsan.so)
export LD_PRELOAD="$libasan:$libubsan"
# CPython keeps interned objects alive at exit: leak reports would be noise.
# allocator_may_return_null: an impossible allocation is std::bad_alloc (MemoryError), as
# without the sanitizer, instead of an ASan abort.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_init_order=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd "$root"
if [ "$#" -eq 0 ]; then set -- "$root/tests" -q; fi
"$venv/bin/python" -m pytest -p no:cacheprovider "$@"
