//! Builds the eBPF object with aya-build (as aya-template does) so `cargo build` yields one
//! binary with the object embedded. The nightly toolchain is pinned in `../bpf-toolchain`.
use anyhow::{anyhow, Context as _};
use aya_build::Toolchain;

fn main() -> anyhow::Result<()> {
    let pin_file = concat!(env!("CARGO_MANIFEST_DIR"), "/../bpf-toolchain");
    println!("cargo:rerun-if-changed={pin_file}");
    let nightly = std::fs::read_to_string(pin_file)
        .with_context(|| format!("reading {pin_file}"))?
        .trim()
        .to_string();
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("MetadataCommand::exec")?;
    let ebpf_package = packages
        .into_iter()
        .find(|p| p.name.as_str() == "fsync-trace-ebpf")
        .ok_or_else(|| anyhow!("fsync-trace-ebpf package not found"))?;
    let root_dir = ebpf_package
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf_package.manifest_path))?;
    let package = aya_build::Package {
        name: ebpf_package.name.as_str(),
        root_dir: root_dir.as_str(),
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::Custom(&nightly))
}
