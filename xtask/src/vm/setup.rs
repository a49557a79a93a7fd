//! What the VM needs: qemu and mkfs.ext4, the musl target, Debian's kernel and busybox
//! packages, static builds of fsync-trace and its workload, and the ext4 image.
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context, Result};

use super::MUSL;
use crate::util::{cargo, have, output, run};

/// qemu and mkfs.ext4 from Debian if missing (scripts/setup.sh installs them too), and the
/// musl target.
pub(super) fn ensure_tools() -> Result<()> {
    let mut missing = Vec::new();
    if !have("qemu-system-x86_64") {
        missing.push("qemu-system-x86");
    }
    if !have("mkfs.ext4") {
        missing.push("e2fsprogs");
    }
    if !missing.is_empty() {
        println!("[vm] installing {}", missing.join(" "));
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let targets = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !targets.lines().any(|l| l.trim() == MUSL) {
        run(Command::new("rustup").args(["target", "add", MUSL]))?;
    }
    Ok(())
}

/// The versioned package behind linux-image-cloud-amd64 (names drift: -56 today), or the
/// newest one already cached when apt cannot answer.
pub(super) fn resolve_kernel_package(cache: &Path) -> Result<String> {
    let ask = || -> Option<String> {
        let out = Command::new("apt-cache")
            .args(["depends", "linux-image-cloud-amd64"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("Depends:"))
            .map(|p| p.trim().to_string())
            .find(|p| p.starts_with("linux-image-") && p.ends_with("-cloud-amd64"))
    };
    if let Some(p) = ask() {
        return Ok(p);
    }
    println!("[vm] apt-cache does not know linux-image-cloud-amd64: apt-get update");
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    if let Some(p) = ask() {
        return Ok(p);
    }
    let mut cached: Vec<String> = fs::read_dir(cache)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.starts_with("linux-image-") && n.contains("-cloud-amd64_") && n.ends_with(".deb")
        })
        .collect();
    cached.sort();
    match cached.last() {
        Some(n) => Ok(n.split('_').next().unwrap_or(n).to_string()),
        None => bail!("cannot resolve linux-image-cloud-amd64 (apt-cache depends failed) and nothing is cached in {}", cache.display()),
    }
}

/// Downloads `pkg` into `cache` (once) and extracts it (once); returns the extracted tree.
pub(super) fn fetch_deb(cache: &Path, pkg: &str) -> Result<PathBuf> {
    let find = || -> Result<Option<PathBuf>> {
        Ok(fs::read_dir(cache)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
            }))
    };
    let deb = if let Some(d) = find()? {
        d
    } else {
        println!("[vm] downloading {pkg}");
        // The sandbox user cannot write to a root-owned cache: download as root, quietly.
        let ok = Command::new("apt-get")
            .args(["download", "-qq", "-o", "APT::Sandbox::User=root", pkg])
            .current_dir(cache)
            .status()?
            .success();
        if !ok {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            run(Command::new("apt-get")
                .args(["download", "-qq", "-o", "APT::Sandbox::User=root", pkg])
                .current_dir(cache))?;
        }
        find()?.with_context(|| {
            format!("apt-get download {pkg} left no .deb in {}", cache.display())
        })?
    };
    let dir = cache.join(pkg);
    let stamp = dir.join(".extracted");
    if !stamp.exists() {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
        fs::write(
            &stamp,
            deb.file_name().unwrap_or_default().as_encoded_bytes(),
        )?;
    }
    Ok(dir)
}

/// First file under `dir` (recursively) whose name matches.
pub(super) fn find_file(dir: &Path, matches: impl Fn(&str) -> bool + Copy) -> Result<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let ty = e.file_type()?;
            if ty.is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_str().is_some_and(matches) {
                return Ok(e.path());
            }
        }
    }
    bail!("nothing matching under {}", dir.display())
}
/// Static binaries that run in any initramfs (and here): (fsync-trace, fsync-trace-workload).
pub(super) fn build_musl() -> Result<(PathBuf, PathBuf)> {
    println!("[vm] cargo build --release --target {MUSL} -p fsync-trace -p fsync-trace-workload");
    let out = cargo()
        .args([
            "build",
            "--release",
            "--target",
            MUSL,
            "-p",
            "fsync-trace",
            "-p",
            "fsync-trace-workload",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!("cargo build --target {MUSL} failed");
    }
    let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(name), Some(exe)) = (v["target"]["name"].as_str(), v["executable"].as_str()) {
            found.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    let get = |n: &str| {
        found
            .get(n)
            .cloned()
            .with_context(|| format!("cargo built no {n} executable"))
    };
    Ok((get("fsync-trace")?, get("fsync-trace-workload")?))
}

/// Cargo's target directory (CARGO_TARGET_DIR or the workspace's `target`).
pub(super) fn target_dir() -> Result<PathBuf> {
    let out = output(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok(PathBuf::from(
        v["target_directory"]
            .as_str()
            .context("cargo metadata without target_directory")?,
    ))
}

pub(super) fn make_ext4(image: &Path) -> Result<()> {
    let _ = fs::remove_file(image);
    fs::File::create(image)?.set_len(32 << 20)?;
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "4096", "-L", "fsync-trace-vm"])
        .arg(image))
}
