//! A process's file mappings (`/proc/PID/maps`): which file, and where in it, an address of its
//! stack lies. Read while the process lives; the files outlive it, so a stack is turned into
//! (file, file offset) pairs at once and symbolized at the end of the trace.
use std::sync::Arc;

/// One mapping of a file into a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// Offset in the file of `start`.
    pub offset: u64,
    /// The mapped file (absolute), or a kernel name such as `[vdso]`.
    pub path: Arc<str>,
    /// Mapped executable (`x` permission): only code addresses are return addresses.
    pub executable: bool,
}

impl Mapping {
    /// Offset in the mapped file of address `addr` (which lies in this mapping).
    pub fn file_offset(&self, addr: u64) -> u64 {
        addr - self.start + self.offset
    }
}

/// The file mappings listed in the text of a `/proc/PID/maps` file; anonymous memory, the heap
/// and the stack are left out. A malformed line is skipped.
pub fn parse(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_line).collect()
}

/// `start-end perms offset dev inode   path` (the path may hold spaces).
fn parse_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    let path = fields.next()?.trim_start();
    if !(path.starts_with('/') || path == "[vdso]") {
        return None;
    }
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        offset: u64::from_str_radix(offset, 16).ok()?,
        path: path.trim_end_matches(" (deleted)").into(),
        executable: perms.as_bytes().get(2) == Some(&b'x'),
    })
}

/// The file mappings of live process `pid`; None if it is gone (or /proc cannot be read).
pub fn read(pid: u32) -> Option<Vec<Mapping>> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .ok()
        .map(|t| parse(&t))
}

/// The mapping holding `addr`.
pub fn find(maps: &[Mapping], addr: u64) -> Option<&Mapping> {
    maps.iter().find(|m| m.start <= addr && addr < m.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c2a8e000-55d0c2a8f000 r--p 00000000 fe:01 1234                       /usr/bin/my app
55d0c2a8f000-55d0c2a90000 r-xp 00001000 fe:01 1234                       /usr/bin/my app
55d0c3a00000-55d0c3a21000 rw-p 00000000 00:00 0                          [heap]
7f1a2b400000-7f1a2b428000 r--p 00000000 fe:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
7f1a2b428000-7f1a2b5bd000 r-xp 00028000 fe:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
7f1a2b600000-7f1a2b601000 r-xp 00000000 fe:01 77                         /tmp/gone (deleted)
7ffd1c9f0000-7ffd1c9f2000 r-xp 00000000 00:00 0                          [vdso]
7ffd1c900000-7ffd1c921000 rw-p 00000000 00:00 0                          [stack]
garbage line
";

    #[test]
    fn parses_file_mappings_and_their_offsets() {
        let maps = parse(MAPS);
        let paths: Vec<&str> = maps.iter().map(|m| &*m.path).collect();
        assert_eq!(
            paths,
            [
                "/usr/bin/my app",
                "/usr/bin/my app",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/tmp/gone",
                "[vdso]"
            ]
        );
        let text = find(&maps, 0x55d0c2a8f123).unwrap();
        assert!(text.executable);
        assert_eq!(text.file_offset(0x55d0c2a8f123), 0x1123);
        let libc = find(&maps, 0x7f1a2b428010).unwrap();
        assert_eq!(libc.file_offset(0x7f1a2b428010), 0x28010);
        assert!(!find(&maps, 0x55d0c2a8e010).unwrap().executable);
        assert!(find(&maps, 0x55d0c3a00010).is_none(), "the heap is no file");
    }

    #[test]
    fn reads_this_process() {
        let maps = read(std::process::id()).unwrap();
        let here = parses_file_mappings_and_their_offsets as fn() as *const () as usize as u64;
        assert!(find(&maps, here).is_some_and(|m| m.executable));
    }
}
