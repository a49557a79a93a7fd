//! Tests of the stack store, the placing of frames and the call site.
use super::*;

fn mapping(start: u64, end: u64, path: &str, executable: bool) -> maps::Mapping {
    maps::Mapping {
        start,
        end,
        offset: 0x1000,
        path: path.into(),
        executable,
    }
}

#[test]
fn the_wrappers_caller_is_found_at_the_stack_pointer() {
    let maps = [
        mapping(0x1000, 0x2000, "/usr/bin/app", true),
        mapping(0x7000, 0x8000, "/usr/lib/libc.so.6", true),
        mapping(0x9000, 0xa000, "/usr/bin/app", false),
    ];
    // write() in libc at 0x7010; [sp] holds data, then a pointer to read-only data, then
    // the return address into put_record (0x1100); the walk went on to main (0x1200).
    let frames = place(&maps, &[0x7010, 0x1200], &[5, 0x9008, 0x1100, 0x1300]);
    let addrs: Vec<(u64, u64, bool)> = frames
        .iter()
        .map(|f| (f.addr, f.file_offset, f.return_address))
        .collect();
    assert_eq!(
        addrs,
        [
            (0x7010, 0x1010, false),
            (0x1100, 0x1100, true),
            (0x1200, 0x1200, true)
        ]
    );
    // Already walked (a caller with a frame of its own): not doubled.
    assert_eq!(place(&maps, &[0x7010, 0x1100], &[0x1100]).len(), 2);
    // The walk went astray (data in the frame-pointer register): cut there.
    let cut = place(&maps, &[0x7010, 0x7461642f, 0x1200], &[0x9008, 0x1100]);
    let addrs: Vec<u64> = cut.iter().map(|f| f.addr).collect();
    assert_eq!(addrs, [0x7010, 0x1100]);
}

/// Stacks that know this test binary by build id `[7; 20]`, and its path.
fn knowing_this_executable() -> (Stacks, Arc<str>) {
    let mut s = Stacks::default();
    let exe: Arc<str> = std::fs::canonicalize("/proc/self/exe")
        .unwrap()
        .to_string_lossy()
        .into();
    s.build_ids.insert([7; 20], exe.clone());
    (s, exe)
}

#[test]
fn a_gone_process_is_placed_through_build_ids() {
    let (mut s, exe) = knowing_this_executable();
    let pid = 4_194_304 + 1; // above PID_MAX_LIMIT: never a live process
                             // write() in a library never seen mapped, then main in the executable (loaded at
                             // 0x5000_0000); the wrapper's caller at 0x5000_1100 is on the stack.
    s.on_stack(
        pid,
        1,
        &[0x7000_0010, 0x5000_2000],
        &[3, 0x5000_1100],
        &[Some(([9; 20], 0x10)), Some(([7; 20], 0x2000))],
        false,
    );
    assert_eq!(s.stats.by_build_id, 1);
    let Kept::Gone(g) = &s.stacks[0] else {
        panic!("placed from maps of a process that never lived")
    };
    let frames: Vec<(u64, String, u64)> = s
        .place_by_build_id(g)
        .iter()
        .map(|f| {
            (
                f.addr,
                f.module.as_deref().unwrap_or("").to_string(),
                f.file_offset,
            )
        })
        .collect();
    let unknown = format!("[build-id {}]", "09".repeat(20));
    assert_eq!(
        frames,
        [
            (0x7000_0010, unknown, 0x10),
            (0x5000_1100, exe.to_string(), 0x1100),
            (0x5000_2000, exe.to_string(), 0x2000)
        ]
    );
}

#[test]
fn a_repeated_stack_of_a_gone_process_takes_the_earlier_build_ids() {
    let (mut s, exe) = knowing_this_executable();
    let pid = 4_194_304 + 2; // above PID_MAX_LIMIT: never a live process
                             // write() in a library never seen mapped, then main in the executable.
    let ips = [0x7000_0010, 0x5000_3000];
    s.on_stack(
        pid,
        1,
        &ips,
        &[3, 0x5000_1100],
        &[Some(([9; 20], 0x10)), Some(([7; 20], 0x3000))],
        false,
    );
    // The same frames again (other data on the stack): the kernel left the build ids off.
    s.on_stack(pid, 1, &ips, &[4, 0x5000_1100], &[], true);
    // Another process's frames at the same addresses do not lend theirs.
    s.on_stack(pid + 1, 1, &ips, &[4, 0x5000_1100], &[], true);
    assert_eq!(s.stacks.len(), 3);
    let placed: Vec<Vec<(Option<String>, u64)>> = s
        .stacks
        .iter()
        .map(|k| {
            let Kept::Gone(g) = k else {
                panic!("placed from maps of a process that never lived")
            };
            s.place_by_build_id(g)
                .iter()
                .map(|f| (f.module.as_deref().map(str::to_string), f.file_offset))
                .collect()
        })
        .collect();
    let exe = Some(exe.to_string());
    let unknown = Some(format!("[build-id {}]", "09".repeat(20)));
    assert_eq!(
        placed[1],
        [(unknown, 0x10), (exe.clone(), 0x1100), (exe, 0x3000)]
    );
    assert_eq!(placed[0], placed[1]);
    assert!(
        placed[2].iter().all(|(m, _)| m.is_none()),
        "{:?}",
        placed[2]
    );
}

#[test]
fn a_file_learned_after_a_gone_stack_still_places_the_wrappers_caller() {
    let mut s = Stacks::default();
    let exe: Arc<str> = std::fs::canonicalize("/proc/self/exe")
        .unwrap()
        .to_string_lossy()
        .into();
    let pid = 4_194_304 + 3; // above PID_MAX_LIMIT: never a live process
    s.on_stack(
        pid,
        1,
        &[0x7000_0010, 0x5000_2000],
        &[3, 0x5000_1100],
        &[Some(([9; 20], 0x10)), Some(([8; 20], 0x2000))],
        false,
    );
    // The executable's build id is learned only now (another process mapped it).
    s.build_ids.insert([8; 20], exe.clone());
    let Kept::Gone(g) = &s.stacks[0] else {
        panic!("placed from maps of a process that never lived")
    };
    let frames: Vec<u64> = s.place_by_build_id(g).iter().map(|f| f.addr).collect();
    assert_eq!(frames, [0x7000_0010, 0x5000_1100, 0x5000_2000]);
}

#[test]
fn a_stack_goes_to_the_threads_next_record_only() {
    let mut s = Stacks::default();
    let pid = std::process::id();
    s.on_stack(pid, 7, &[0x10, 0x20], &[], &[], false);
    s.on_stack(pid, 8, &[0x10, 0x20], &[], &[], false);
    assert_eq!(s.stacks.len(), 1, "one distinct stack");
    let mut a = Actor {
        pid,
        tid: 7,
        stack: Some(StackId::PENDING),
        ..Default::default()
    };
    s.attach(&mut a);
    assert_eq!(a.stack, Some(StackId(0)));
    // Thread 8's next record says no stack came: the pending one is dropped, not kept for
    // a later record.
    let mut b = Actor {
        pid,
        tid: 8,
        ..Default::default()
    };
    s.attach(&mut b);
    assert_eq!(b.stack, None);
    let mut c = Actor {
        pid,
        tid: 8,
        stack: Some(StackId::PENDING),
        ..Default::default()
    };
    s.attach(&mut c);
    assert_eq!(c.stack, None);
    assert_eq!(s.stats.missing, 1);
    assert_eq!(s.stats.taken, 2);
}

fn frame(function: &str, file: Option<&str>, module: &str) -> Frame {
    Frame {
        function: Some(function.into()),
        file: file.map(str::to_string),
        line: file.map(|_| 9),
        module: Some(module.into()),
        address: "0x1".into(),
        offset: "0x1".into(),
    }
}

#[test]
fn the_call_site_skips_libc_and_the_rust_standard_library() {
    let frames = [
        frame("write", None, "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        frame(
            "std::fs::write",
            Some("/rustc/abc/library/std/src/fs.rs"),
            "/app",
        ),
        frame("put_record", Some("/src/kv.c"), "/app"),
    ];
    assert_eq!(
        call_site(&frames).unwrap().function.as_deref(),
        Some("put_record")
    );
    let stripped = [
        frame("write", None, "/lib/x86_64-linux-gnu/libc.so.6"),
        frame("main", None, "/app"),
    ];
    assert_eq!(
        call_site(&stripped).unwrap().function.as_deref(),
        Some("main")
    );
    // The sqlite3 shell: its I/O is libsqlite3's (stripped, no frame pointers past it).
    let library = [
        frame(
            "__GI_unlink",
            Some("./io/../sysdeps/unix/syscall-template.S"),
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        ),
        frame("", None, "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6"),
    ];
    assert_eq!(
        call_site(&library).unwrap().module.as_deref(),
        Some("/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6")
    );
    // The library's process gone before its mappings were read: a module known by build id
    // only is still outside the C runtime.
    let unplaced = [
        frame("unlink", None, "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        frame("", None, "[build-id 5221b80bd99650e3]"),
    ];
    assert_eq!(
        call_site(&unplaced).unwrap().module.as_deref(),
        Some("[build-id 5221b80bd99650e3]")
    );
    let only_libc = [frame("write", None, "/lib/x86_64-linux-gnu/libc.so.6")];
    assert_eq!(
        call_site(&only_libc).unwrap().function.as_deref(),
        Some("write")
    );
    assert!(call_site(&[]).is_none());
}

#[test]
fn the_c_runtime_is_libc_the_loader_and_the_kernels_pages() {
    for m in [
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30",
        "[vdso]",
    ] {
        assert!(super::c_runtime_module(m), "{m}");
    }
    for m in [
        "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6",
        "/usr/bin/git",
        "[build-id 5221b80bd99650e3]",
    ] {
        assert!(!super::c_runtime_module(m), "{m}");
    }
}

/// A short-lived process's library, never seen mapped by any process the trace read: its
/// build id is looked up in the library directories, for wanted stacks only.
#[test]
fn a_library_no_mapping_showed_is_found_in_the_library_directories() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = std::fs::canonicalize(dir.path()).unwrap();
    let lib = dir_path.join("libgone.so.1");
    std::fs::copy("/proc/self/exe", &lib).unwrap();
    // Not a library: its name says it is not one.
    std::fs::copy("/proc/self/exe", dir_path.join("program")).unwrap();
    let id = super::libdirs::build_id(&lib).expect("the test binary has a build id");
    let dirs = [dir_path.to_str().unwrap()];
    let gone = |s: &mut Stacks| {
        s.build_ids.clear();
        let pid = 4_194_304 + 2; // above PID_MAX_LIMIT: never a live process
        s.on_stack(pid, 1, &[0x7000_0010], &[], &[Some((id, 0x10))], false);
    };
    let mut unwanted = Stacks::default();
    gone(&mut unwanted);
    unwanted.find_unknown_build_ids(&|_| false, &dirs);
    assert!(unwanted.build_ids.is_empty(), "looked up for no finding");
    let mut s = Stacks::default();
    gone(&mut s);
    s.find_unknown_build_ids(&|_| true, &dirs);
    assert_eq!(
        s.build_ids.get(&id).map(|p| p.to_string()),
        Some(lib.to_string_lossy().to_string())
    );
    let Kept::Gone(g) = &s.stacks[0] else {
        panic!("placed from maps of a process that never lived")
    };
    assert_eq!(
        s.place_by_build_id(g)[0].module.as_deref(),
        Some(lib.to_str().unwrap())
    );
}
