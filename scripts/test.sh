#!/usr/bin/env bash
# The test command of README.md: installs what is missing, checks formatting and lints, then runs
# every test in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
source scripts/env.sh
# The CUDA suites run on the emulated CUDA device where no GPU exists: it must build here.
export SCDREAMER_REQUIRE_EMULATOR=1
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo build --release
cargo test --release
