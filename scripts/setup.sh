#!/usr/bin/env bash
# Installs what scdreamer needs on a fresh Debian/Ubuntu machine that has Rust and Python.
#   bash scripts/setup.sh          system libraries for building (libhdf5-dev, pkg-config, g++)
#   bash scripts/setup.sh --test   also the Python venv used by the tests (anndata + scanpy for
#                                  round-trip checks, the NVRTC wheel that compile-checks kernels,
#                                  maturin that builds the Python package's wheel)
# Why apt and not a self-contained HDF5 build: hdf5-metno's static build compiles HDF5 from C
# sources with cmake (minutes, and cmake is not on a bare machine); Debian's libhdf5-dev installs
# in seconds and is what the h5ad layer was measured with. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

need_apt=0
pkg-config --exists hdf5 2>/dev/null || need_apt=1
command -v pkg-config >/dev/null 2>&1 || need_apt=1
# g++ builds the emulated CUDA device (emu/, by build.rs).
command -v c++ >/dev/null 2>&1 || need_apt=1
if [ "$need_apt" = 1 ]; then
    echo "setup: installing libhdf5-dev, pkg-config and g++ with apt-get"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libhdf5-dev pkg-config g++ >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
    # tests/evaluate_report.rs opens the HTML report in a real headless browser.
    if ! command -v chromium >/dev/null 2>&1; then
        echo "setup: installing chromium with apt-get (headless check of evaluate --report)"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
    VENV=.venv
    if [ ! -x "$VENV/bin/python" ]; then
        echo "setup: creating Python venv $VENV for the tests"
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "anndata>=0.10" "scanpy>=1.10" "nvidia-cuda-nvrtc==13.0.88" "maturin>=1.5,<2"
fi
