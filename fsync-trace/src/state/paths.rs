//! Lexical path helpers (no filesystem access).

/// Normalizes an absolute path: collapses `//`, `.` and `..` (never above `/`).
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `base` joined with a relative `name`, normalized.
pub fn join(base: &str, name: &str) -> String {
    if name.starts_with('/') {
        normalize(name)
    } else {
        normalize(&format!("{base}/{name}"))
    }
}

/// ("/a/b", "c") for "/a/b/c"; ("/", "c") for "/c".
pub fn split_parent(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize("/a//b/./c/../d"), "/a/b/d");
        assert_eq!(normalize("/../x"), "/x");
        assert_eq!(normalize("/"), "/");
        assert_eq!(join("/var/tmp", "../lib/x"), "/var/lib/x");
        assert_eq!(join("/var/tmp", "/etc/y"), "/etc/y");
    }

    #[test]
    fn splits() {
        assert_eq!(split_parent("/a/b/c"), ("/a/b", "c"));
        assert_eq!(split_parent("/c"), ("/", "c"));
    }
}
