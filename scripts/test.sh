#!/usr/bin/env bash
# All tests: unit tests (no root needed), then the root-only suites that load the real eBPF
# programs into this kernel. Installs what it needs first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
step() { printf '\n==> %s\n' "$*" >&2; }

step "format and lints (userspace crates; then the eBPF crate alone, for its BPF target)"
cargo fmt --all -- --check
cargo clippy --release --all-targets -- -D warnings
cargo +"$(cat bpf-toolchain)" clippy -p fsync-trace-ebpf --release --target bpfel-unknown-none \
  -Z build-std=core --target-dir target/ebpf-clippy -- -D warnings

step "unit tests"
cargo test --release

step "integration tests (real eBPF programs on this kernel)"
cargo xtask integration

step "metrics tests (a real Prometheus server scraping the tracer)"
cargo test --release -p fsync-trace --test metrics -- --include-ignored --test-threads=1

step "second kernel: Debian 6.1 in qemu (TCG), every tier forced, identical findings required"
cargo xtask vm
