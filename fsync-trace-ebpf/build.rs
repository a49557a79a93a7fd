//! Build script of the eBPF crate: only makes cargo rebuild it when bpf-linker changes.
use which::which;

/// Rebuild when bpf-linker changes (it is an undeclared dependency of this crate; see
/// aya-template for the reasoning).
fn main() {
    if let Ok(bpf_linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", bpf_linker.display());
    }
}
