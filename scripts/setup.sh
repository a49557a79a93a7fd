#!/usr/bin/env bash
# Takes a fresh machine of this kind (Debian 12, rustup, root) to a working fsync-trace build.
# Idempotent and quick when everything is already in place.
set -euo pipefail

# The nightly used for the eBPF object (pinned in ./bpf-toolchain; LLVM 22 = BPF_LINKER_LLVM).
NIGHTLY="$(cat "$(dirname "$0")/../bpf-toolchain")"
BPF_LINKER_VERSION="0.13.0"
BPF_LINKER_LLVM="llvm-22"
APT_PACKAGES=(
  build-essential pkg-config
  strace bpftrace                      # benchmark baselines
  time                                 # benchmark: the tracer's own peak RSS (GNU time launches it)
  prometheus                           # metrics integration test (real server + promtool)
  fuse3 libfuse3-dev                   # failing-fsync FUSE filesystem in the tests
  sqlite3 libsqlite3-dev               # embedded database workload
  git                                  # real-program identity tests (Debian git at /usr/bin/git)
  tmux                                 # the --live terminal view, driven and read in a real terminal
  postgresql redis-server redis-tools  # server audits (-p -f on a postmaster, a Redis rewrite child)
  qemu-system-x86 busybox-static cpio e2fsprogs   # second-kernel (kprobe/fentry) runs
  chromium                             # the --html page, driven in headless Chromium
)

log() { printf '[setup] %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh must run as root (it installs packages)" >&2
  exit 1
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian prometheus package starts a server on :9090; tests start their own on loopback.
if systemctl is-active --quiet prometheus 2>/dev/null; then systemctl stop prometheus || true; fi

if ! rustup run "$NIGHTLY" rustc --version >/dev/null 2>&1 \
   || ! rustup component list --toolchain "$NIGHTLY" --installed 2>/dev/null | grep -q '^rust-src' \
   || ! rustup component list --toolchain "$NIGHTLY" --installed 2>/dev/null | grep -q '^clippy'; then
  log "installing $NIGHTLY with rust-src and clippy"
  rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src --component clippy
fi
# fmt and clippy of the userspace crates (scripts/test.sh checks both).
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup target list --installed | grep -q x86_64-unknown-linux-musl \
  || rustup target add x86_64-unknown-linux-musl

# bpf-linker must link against the exact libLLVM the nightly's rustc emits bitcode for.
if ! bpf-linker --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; then
  sysroot="$(rustc +"$NIGHTLY" --print sysroot)"
  libllvm="$(ls "$sysroot"/lib/libLLVM.so.* | head -n1)"
  prefix="$HOME/.cache/fsync-trace/llvm-prefix"
  mkdir -p "$prefix/lib"
  ln -sf "$libllvm" "$prefix/lib/libLLVM.so"
  log "building bpf-linker $BPF_LINKER_VERSION against $libllvm"
  # rpath: bpf-linker then finds the toolchain's libLLVM without LD_LIBRARY_PATH.
  LLVM_PREFIX="$prefix" LD_LIBRARY_PATH="$sysroot/lib" \
  RUSTFLAGS="-C link-arg=-Wl,-rpath,$sysroot/lib" cargo +"$NIGHTLY" install bpf-linker --force \
    --locked --version "$BPF_LINKER_VERSION" --no-default-features --features "$BPF_LINKER_LLVM"
fi
# playwright-core (no bundled browser: the tests use Debian's /usr/bin/chromium), pinned by
# the lock file of the page tests' npm project.
web="$(dirname "$0")/../fsync-trace/tests/web"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "installing node and npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -f "$web/node_modules/playwright-core/package.json" ] \
   || ! grep -q "\"version\": \"$(sed -n 's/.*"playwright-core": "\(.*\)".*/\1/p' "$web/package.json")\"" \
        "$web/node_modules/playwright-core/package.json"; then
  log "installing playwright-core for the page tests"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
fi

# Microsoft's SARIF validator for the --sarif tests (tests/integration/stacks.rs): a
# self-contained .NET build shipped through npm; npm skips its chmod install script.
SARIF_MULTITOOL_VERSION="5.7.0"
SARIF_PREFIX="/opt/fsync-trace-test/npm"
if [ ! -x "$SARIF_PREFIX/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool" ] \
   || ! grep -q "\"version\": \"$SARIF_MULTITOOL_VERSION\"" \
        "$SARIF_PREFIX/node_modules/@microsoft/sarif-multitool/package.json" 2>/dev/null; then
  log "installing @microsoft/sarif-multitool $SARIF_MULTITOOL_VERSION into $SARIF_PREFIX"
  mkdir -p "$SARIF_PREFIX"
  # Node may come from elsewhere (with its own npm): Debian's only when there is none.
  if ! command -v npm >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  npm install --prefix "$SARIF_PREFIX" --no-audit --no-fund --loglevel=error \
    "@microsoft/sarif-multitool@$SARIF_MULTITOOL_VERSION" >/dev/null
  chmod u+x "$SARIF_PREFIX/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"
fi
log "ok: $(rustc +"$NIGHTLY" --version), $(bpf-linker --version)"

# The Kubernetes manifest test (deploy/kubernetes) validates against the API schemas.
if ! command -v kubernetes-validate >/dev/null; then
  log "installing kubernetes-validate (PyPI)"
  pip install --quiet kubernetes-validate==1.37.0
fi
