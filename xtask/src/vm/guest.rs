//! The guest: its init script, the initramfs holding it, and the boot under QEMU's TCG.
use std::{
    fs,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use fsync_trace_workload::scenarios::Scenario;

use super::{MARK, TIERS};
use crate::util::tail;

pub(super) fn init_script(scenarios: &[&Scenario]) -> String {
    let mut s = format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin RUST_LOG=warn
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
dmesg -n 1
echo "{MARK} kernel $(uname -r)"
insmod /brd.ko rd_nr=1 rd_size=65536 || echo "{MARK} error insmod brd.ko"
dd if=/ext4.img of=/dev/ram0 bs=1M 2>/dev/null || echo "{MARK} error dd"
rm -f /ext4.img
mount -t ext4 /dev/ram0 /mnt || echo "{MARK} error mount /dev/ram0"
run() {{
  t=$1; s=$2; shift 2
  d=/mnt/$t/$s
  mkdir -p $d
  sync
  a=$(cut -d' ' -f1 /proc/uptime)
  timeout 90 /bin/fsync-trace --tier $t -v --dirty-extent ${{FT_WAL:+--wal "$FT_WAL"}} --json -o /tmp/report.json -- /bin/fsync-trace-workload $s $d "$@" >/dev/null 2>/tmp/err.txt
  rc=$?
  b=$(cut -d' ' -f1 /proc/uptime)
  echo "{MARK} begin $t $s rc=$rc start=$a end=$b"
  grep -E '^(fsync-trace|workload):' /tmp/err.txt
  echo "{MARK} json"
  cat /tmp/report.json 2>/dev/null
  echo
  echo "{MARK} end"
  rm -f /tmp/report.json
}}
"#
    );
    for sc in scenarios {
        let wal = sc.wal_glob();
        if let Some(glob) = wal {
            s.push_str(&format!("FT_WAL='{glob}'\n"));
        }
        for tier in TIERS {
            s.push_str(&format!("run {tier} {} {}\n", sc.name, sc.args.join(" ")));
        }
        if wal.is_some() {
            s.push_str("FT_WAL=\n");
        }
    }
    s.push_str(&format!("echo \"{MARK} done\"\npoweroff -f\n"));
    s
}

pub(super) enum Source {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// An uncompressed newc cpio archive (what the kernel unpacks as initramfs), with the
/// directories the init script needs and /dev/console.
pub(super) fn write_initramfs(path: &Path, files: &[(&str, Source, u32)]) -> Result<()> {
    let mut out = std::io::BufWriter::new(fs::File::create(path)?);
    let mut ino = 1u32;
    let mut entry = |out: &mut std::io::BufWriter<fs::File>,
                     name: &str,
                     mode: u32,
                     rdev: (u32, u32),
                     data: &[u8]|
     -> Result<()> {
        let header =
            format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            ino, mode, 0, 0, 1, 0, data.len(), 0, 0, rdev.0, rdev.1, name.len() + 1, 0
        );
        ino += 1;
        out.write_all(header.as_bytes())?;
        out.write_all(name.as_bytes())?;
        out.write_all(&[0])?;
        let pad = |n: usize| (4 - n % 4) % 4;
        out.write_all(&[0; 3][..pad(110 + name.len() + 1)])?;
        out.write_all(data)?;
        out.write_all(&[0; 3][..pad(data.len())])?;
        Ok(())
    };
    for dir in ["bin", "dev", "proc", "sys", "mnt", "tmp"] {
        entry(&mut out, dir, 0o040755, (0, 0), &[])?;
    }
    entry(&mut out, "dev/console", 0o020600, (5, 1), &[])?;
    for (name, source, perm) in files {
        let data = match source {
            Source::Bytes(b) => b.clone(),
            Source::File(p) => fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        };
        entry(&mut out, name, 0o100000 | perm, (0, 0), &data)?;
    }
    entry(&mut out, "TRAILER!!!", 0, (0, 0), &[])?;
    out.flush()?;
    Ok(())
}

/// Boots the guest under TCG and returns its console output (also written to `log`).
pub(super) fn boot(vmlinuz: &Path, initrd: &Path, timeout: Duration, log: &Path) -> Result<String> {
    println!(
        "[vm] booting {} under qemu (TCG), timeout {}s",
        vmlinuz.display(),
        timeout.as_secs()
    );
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel", "tcg", "-cpu", "max", "-m", "1G", "-smp", "1", "-kernel",
        ])
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 panic=-1 quiet",
            "-display",
            "none",
            "-serial",
            "stdio",
        ])
        .args(["-monitor", "none", "-no-reboot", "-nodefaults"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let mut stdout = child.stdout.take().context("qemu stdout")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let console = String::from_utf8_lossy(&reader.join().unwrap_or_default()).replace('\r', "");
    fs::write(log, &console)?;
    match status {
        None => bail!(
            "the guest did not finish within {}s (console log: {}); last lines:\n{}",
            timeout.as_secs(),
            log.display(),
            tail(&console, 15)
        ),
        Some(s) if !s.success() => bail!(
            "qemu failed ({s}): {}\n{}",
            stderr.trim(),
            tail(&console, 15)
        ),
        Some(_) if !console.contains(&format!("{MARK} done")) => {
            bail!(
                "the guest stopped before finishing (console log: {}):\n{}",
                log.display(),
                tail(&console, 25)
            )
        }
        Some(_) => Ok(console),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_archive_layout() {
        let dir = std::env::temp_dir().join(format!("xtask-vm-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.cpio");
        write_initramfs(
            &p,
            &[("init", Source::Bytes(b"#!/bin/sh\n".to_vec()), 0o755)],
        )
        .unwrap();
        let data = fs::read(&p).unwrap();
        assert_eq!(data.len() % 4, 0);
        assert!(data.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&data);
        assert!(
            text.contains("dev/console\0")
                && text.contains("init\0")
                && text.contains("TRAILER!!!\0")
        );
        // newc: file data starts 4-byte aligned.
        assert_eq!(text.find("#!/bin/sh").unwrap() % 4, 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
