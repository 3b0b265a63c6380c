#!/usr/bin/env bash
# The test command of README.md: installs what is missing, checks formatting and lints, then runs
# every test in release mode, then the Python package's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
source scripts/env.sh
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo build --release
cargo test --release
# The Python package: wheel built, installed into a fresh venv without Rust, pytest there.
bash scripts/test_python.sh
