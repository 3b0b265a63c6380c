#!/usr/bin/env bash
# The run command of README.md: installs what is missing, builds, and integrates the bundled demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release
./target/release/scdreamer integrate "$@"
