//! Binaries of other workspace crates the suites run (cargo only gives the paths of this
//! package's own binaries).
use std::path::Path;

/// The workload binary (crate `fsync-trace-workload`), built into the same target directory
/// as these tests: `cargo xtask integration` builds it first.
pub fn workload() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        // <target>/<profile>/deps/<test binary> -> <target>/<profile>/fsync-trace-workload
        let exe = std::env::current_exe().expect("test binary path");
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary in <target>/<profile>/deps")
            .join("fsync-trace-workload");
        assert!(
            bin.exists(),
            "{} is missing: build it with `cargo build --release -p fsync-trace-workload`",
            bin.display()
        );
        bin.to_string_lossy().into_owned()
    })
}
