#!/usr/bin/env bash
# Install a built matchar wheel into a fresh virtual environment on a PATH without any
# C/C++ compiler (so nothing can be built from source behind our back), then run the
# demo, which calls every job's kernels on built-in data (the wheel with every job's extra,
# so that no job is skipped), and report the CPU dispatch.
#   usage: scripts/wheel_smoke.sh dist/matchar-*.whl
set -euo pipefail
wheel=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/build/venv-wheel-smoke"
rm -rf "$venv"
python3 -m venv "$venv"

# A PATH of the venv and a folder holding only the tools pip and the demo may need.
tools="$root/build/smoke-path"
rm -rf "$tools" && mkdir -p "$tools"
for t in sh bash env uname ls cat; do
  p=$(command -v "$t" || true)
  [ -n "$p" ] && ln -s "$p" "$tools/$t"
done
export PATH="$venv/bin:$tools"
for cc in cc gcc g++ c++ clang clang++ cmake; do
  if command -v "$cc" >/dev/null 2>&1; then
    echo "wheel_smoke: $cc is still on PATH" >&2
    exit 1
  fi
done

pip install -q --only-binary=:all: "$wheel[edx,imaging,nmr]"
cd "$venv"  # not the source tree: matchar must come from the wheel
python - <<'EOF'
import matchar
print("matchar", matchar.__version__, "from", matchar.__file__)
print("build_info", matchar._core.build_info())
EOF
matchar demo --out "$venv/demo"
test -s "$venv/demo/report.html"
python -c "import json, sys; s = json.load(open(sys.argv[1]))['skipped']; assert not s, s" \
    "$venv/demo/report.json"
echo "wheel_smoke: ok"
