#!/usr/bin/env bash
# The test command of README.md: installs what is missing, checks formatting and lints, then runs
# every test in release mode, then the Python package's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
source scripts/env.sh
# The CUDA suites run on the emulated CUDA device where no GPU exists: it must build here.
export SCDREAMER_REQUIRE_EMULATOR=1
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo build --release
# The CUDA tests name themselves here when they ran on the emulated CUDA device.
export SCDREAMER_EMULATED_TEST_LOG="$PWD/target/emulated-cuda-tests.txt"
rm -f "$SCDREAMER_EMULATED_TEST_LOG"
cargo test --release
emulated=$(sort -u "$SCDREAMER_EMULATED_TEST_LOG" 2>/dev/null | wc -l)
echo "CUDA tests run on the emulated CUDA device: $emulated"
sort "$SCDREAMER_EMULATED_TEST_LOG" 2>/dev/null | uniq -c | sed 's/^/  /' || true
if [ "${CI:-}" = "true" ] && [ "$emulated" -eq 0 ]; then
    echo "CI: no CUDA test ran on the emulated device" >&2
    exit 1
fi
# The Python package: wheel built, installed into a fresh venv without Rust, pytest there.
bash scripts/test_python.sh
