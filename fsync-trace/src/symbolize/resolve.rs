//! (file, file offset) -> function, source file and line, with `blazesym` (ELF symbols, DWARF
//! lines, inlined functions). Each distinct (file, offset) is looked up once; a frame without
//! debug information keeps `module+offset` and the function if the symbol table has it.
use std::{collections::HashMap, sync::Arc};

use blazesym::symbolize::{
    source::{Elf, Source},
    Input, Symbolized, Symbolizer,
};
use serde::Serialize;

use super::RawFrame;

/// One frame of a finding's stack, innermost first (an inlined function is a frame of its own,
/// before the function it was inlined into).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// The function (demangled), if the symbol table or debug information has it.
    pub function: Option<String>,
    /// The source file, if the module has line information.
    pub file: Option<String>,
    pub line: Option<u32>,
    /// The module (executable or shared object) the address is in; None if it was not
    /// mapped from a file (or the process was gone before its mappings were read).
    pub module: Option<String>,
    /// The address in the process, hexadecimal.
    pub address: String,
    /// The offset of the address in the module's file, hexadecimal (`module+offset`).
    pub offset: String,
}

/// Symbolizes frames, caching by (module, offset).
pub struct Resolver {
    symbolizer: Symbolizer,
    cache: HashMap<(Arc<str>, u64), Arc<[Frame]>>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            symbolizer: Symbolizer::builder()
                .enable_code_info(true)
                .enable_inlined_fns(true)
                .enable_demangling(true)
                .build(),
            cache: HashMap::new(),
        }
    }
}

impl Resolver {
    /// The frames `raw` stands for (several if functions were inlined at that address).
    pub fn frames(&mut self, raw: &RawFrame) -> Arc<[Frame]> {
        let Some(module) = &raw.module else {
            return Arc::from([Frame {
                function: None,
                file: None,
                line: None,
                module: None,
                address: format!("{:#x}", raw.addr),
                offset: format!("{:#x}", raw.file_offset),
            }]);
        };
        if let Some(f) = self.cache.get(&(module.clone(), raw.file_offset)) {
            return with_address(f, raw.addr);
        }
        let frames: Arc<[Frame]> = self.lookup(module, raw).into();
        self.cache
            .insert((module.clone(), raw.file_offset), frames.clone());
        frames
    }

    fn lookup(&self, module: &Arc<str>, raw: &RawFrame) -> Vec<Frame> {
        let plain = Frame {
            function: None,
            file: None,
            line: None,
            module: Some(module.to_string()),
            address: format!("{:#x}", raw.addr),
            offset: format!("{:#x}", raw.file_offset),
        };
        if module.starts_with('[') {
            return vec![plain]; // [vdso]: no file to read
        }
        // A return address points after its call: the call's own line is one byte before.
        let at = raw
            .file_offset
            .saturating_sub(u64::from(raw.return_address));
        let mut elf = Elf::new(&**module);
        // The C runtime by its symbols alone: its debug information (Debian's libc6-dbg: a
        // detached, compressed DWARF file, about 10 MiB once blazesym inflates it) only ever
        // places a syscall wrapper in `syscall-template.S`, and call sites skip these frames.
        elf.debug_syms = !super::c_runtime_module(module);
        let src = Source::Elf(elf);
        let sym = match self
            .symbolizer
            .symbolize(&src, Input::FileOffset(&[at][..]))
        {
            Ok(mut v) if !v.is_empty() => v.swap_remove(0),
            Ok(_) => return vec![plain],
            Err(e) => {
                log::debug!("symbolizing {module}+{at:#x}: {e}");
                return vec![plain];
            }
        };
        let Symbolized::Sym(sym) = sym else {
            return vec![plain];
        };
        let code = |c: Option<&blazesym::symbolize::CodeInfo<'_>>| match c {
            Some(c) => (Some(c.to_path().display().to_string()), c.line),
            None => (None, None),
        };
        // Inlined functions are listed outermost first; the deepest holds the address itself
        // and the call site of each one is the location of the one around it.
        let mut out = Vec::new();
        let mut names: Vec<String> = sym.inlined.iter().map(|i| i.name.to_string()).collect();
        names.insert(0, sym.name.to_string());
        let mut places: Vec<(Option<String>, Option<u32>)> = vec![code(sym.code_info.as_deref())];
        places.extend(sym.inlined.iter().map(|i| code(i.code_info.as_ref())));
        // With inlining, blazesym gives the outer symbol the location of the first inlined
        // call and each inlined function its own location: innermost first below.
        for (name, (file, line)) in names.into_iter().zip(places).rev() {
            out.push(Frame {
                function: Some(name),
                file,
                line,
                ..plain.clone()
            });
        }
        out
    }
}

/// Cached frames, with the process address of this occurrence.
fn with_address(frames: &Arc<[Frame]>, addr: u64) -> Arc<[Frame]> {
    let address = format!("{addr:#x}");
    if frames.iter().all(|f| f.address == address) {
        return frames.clone();
    }
    frames
        .iter()
        .map(|f| Frame {
            address: address.clone(),
            ..f.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn marker() -> u64 {
        std::hint::black_box(7)
    }

    #[test]
    fn symbolizes_this_test_binary_and_degrades_without_a_file() {
        let maps = super::super::maps::read(std::process::id()).unwrap();
        let addr = marker as fn() -> u64 as *const () as usize as u64;
        let m = super::super::maps::find(&maps, addr).unwrap();
        let raw = RawFrame {
            addr,
            module: Some(m.path.clone()),
            file_offset: m.file_offset(addr),
            return_address: false,
        };
        let mut r = Resolver::default();
        let frames = r.frames(&raw);
        let f = &frames[0];
        assert!(
            f.function.as_deref().unwrap_or("").contains("marker"),
            "{frames:?}"
        );
        // Release test builds carry no DWARF: a line only where there is debug information.
        if let Some(file) = &f.file {
            assert!(file.ends_with("resolve.rs"), "{f:?}");
        }
        // libc (symbol table only, some sections compressed): the function, no line.
        let libc = maps
            .iter()
            .find(|m| m.executable && m.path.contains("/libc.so"));
        if let Some(libc) = libc {
            let write = libc::write as *const () as usize as u64;
            let raw = RawFrame {
                addr: write,
                module: Some(libc.path.clone()),
                file_offset: libc.file_offset(write),
                return_address: false,
            };
            let f = r.frames(&raw);
            assert!(
                f[0].function.as_deref().unwrap_or("").contains("write"),
                "{f:?}"
            );
        }
        assert_eq!(r.frames(&raw), frames, "cached");
        let gone = RawFrame {
            addr: 0x1234,
            module: Some("/nonexistent/lib.so".into()),
            file_offset: 0x234,
            return_address: true,
        };
        let g = r.frames(&gone);
        assert_eq!(
            (g[0].module.as_deref(), g[0].offset.as_str(), &g[0].function),
            (Some("/nonexistent/lib.so"), "0x234", &None)
        );
        let unmapped = RawFrame {
            addr: 0x99,
            module: None,
            file_offset: 0x99,
            return_address: true,
        };
        let u = r.frames(&unmapped);
        assert_eq!(
            (u[0].module.as_deref(), u[0].offset.as_str()),
            (None, "0x99")
        );
    }
}
