#!/usr/bin/env bash
# The Python package's tests (run by scripts/test.sh after the Rust tests, which build the CLI
# the parity tests compare against): builds the abi3 wheel with maturin (reusing target/'s
# compiled dependencies), installs it into a FRESH venv together with anndata, scanpy and
# pytest, checks that the extension needs no libhdf5, and runs python/tests there with no Rust
# toolchain on PATH and no NVRTC on LD_LIBRARY_PATH: what a user's clean machine sees.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
source scripts/env.sh
rm -rf target/wheels
"${SCDREAMER_MATURIN:-.venv/bin/maturin}" build --release --quiet --out target/wheels
wheel="$(ls target/wheels/scdreamer-*.whl)"
venv=target/wheel-venv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" \
    "anndata>=0.10" "scanpy>=1.10" pytest
so="$(ls "$venv"/lib/python3*/site-packages/scdreamer/_scdreamer*.so)"
if ldd "$so" | grep -Ei "hdf5|libcuda|cublas|nvrtc|libpython"; then
    echo "test_python: $so links a library it must not need at run time" >&2
    exit 1
fi
clean_path="$(cd "$venv/bin" && pwd):/usr/bin:/bin"
if PATH="$clean_path" command -v cargo >/dev/null || PATH="$clean_path" command -v rustc >/dev/null; then
    echo "test_python: a Rust toolchain is on the clean PATH" >&2
    exit 1
fi
env -i HOME="$HOME" PATH="$clean_path" CI="${CI:-}" LANG=C.UTF-8 \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
echo "test_python: wheel built, installed and tested in $(( $(date +%s) - start )) s"
