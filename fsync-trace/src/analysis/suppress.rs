//! Suppressions: findings a program makes by design, marked as such by rules with a reason
//! (`--suppress FILE`, TOML) or by a shipped profile (`--profile postgresql`).
//!
//! A rule file is a list of `[[rule]]` tables: `kind` (a finding kind or "any"), `path` (a glob
//! over the finding's absolute path; for `unsynced_parent_dir`, over `<dir>/<entry>`), optional
//! `role` (a glob over the acting process's role or name), a required `reason` and an optional
//! `source`. Globs: `*` within one path component, `**` across components (globset).
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::state::{Finding, FindingKind};

/// The profiles shipped with fsync-trace: (name, rules).
pub const PROFILES: [(&str, &str); 4] = [
    ("postgresql", include_str!("profiles/postgresql.toml")),
    ("redis", include_str!("profiles/redis.toml")),
    ("sqlite", include_str!("profiles/sqlite.toml")),
    ("git", include_str!("profiles/git.toml")),
];

#[derive(Debug, Error)]
pub enum SuppressError {
    #[error("cannot read suppression file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("suppression file {origin}: {source}")]
    Parse {
        origin: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("suppression file {origin}, rule {index}: {what}")]
    Rule {
        origin: String,
        index: usize,
        what: String,
    },
    #[error("unknown profile {0:?} (known: postgresql, redis, sqlite, git)")]
    UnknownProfile(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    kind: String,
    path: String,
    role: Option<String>,
    reason: String,
    source: Option<String>,
}

/// Why a finding was suppressed: the rule's reason, source and where the rule is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SuppressedBy {
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `profile:NAME#N` or `FILE#N` (N counts rules from 1).
    pub rule: String,
}

#[derive(Debug)]
struct Rule {
    kind: Option<FindingKind>,
    path: GlobMatcher,
    role: Option<GlobMatcher>,
    why: SuppressedBy,
}

/// Every rule given, in order: the first that matches a finding suppresses it.
#[derive(Debug, Default)]
pub struct Rules(Vec<Rule>);

fn glob(pattern: &str, separator: bool) -> Result<GlobMatcher, globset::Error> {
    Ok(GlobBuilder::new(pattern)
        .literal_separator(separator)
        .build()?
        .compile_matcher())
}

impl Rules {
    /// The rules of `profiles` (shipped) then of `files`, in the order given.
    pub fn load(profiles: &[String], files: &[PathBuf]) -> Result<Self, SuppressError> {
        let mut rules = Rules::default();
        for name in profiles {
            let text = PROFILES
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .ok_or_else(|| SuppressError::UnknownProfile(name.clone()))?;
            rules.add(text, &format!("profile:{name}"))?;
        }
        for path in files {
            let text = std::fs::read_to_string(path).map_err(|source| SuppressError::Read {
                path: path.clone(),
                source,
            })?;
            rules.add(&text, &path.display().to_string())?;
        }
        Ok(rules)
    }

    /// Adds the rules of one TOML text (`origin` names it in errors and in `SuppressedBy`).
    pub fn add(&mut self, text: &str, origin: &str) -> Result<(), SuppressError> {
        let file: RuleFile = toml::from_str(text).map_err(|e| SuppressError::Parse {
            origin: origin.to_string(),
            source: Box::new(e),
        })?;
        for (i, r) in file.rule.into_iter().enumerate() {
            let bad = |what: String| SuppressError::Rule {
                origin: origin.to_string(),
                index: i + 1,
                what,
            };
            let kind = match r.kind.as_str() {
                "any" => None,
                k => Some(FindingKind::from_name(k).ok_or_else(|| {
                    bad(format!(
                        "unknown kind {k:?} (expected {} or \"any\")",
                        FindingKind::ALL.map(|k| k.name()).join(", ")
                    ))
                })?),
            };
            if r.reason.trim().is_empty() {
                return Err(bad(
                    "the reason is empty: say why the finding is by design".into()
                ));
            }
            if !r.path.starts_with('/') && !r.path.starts_with("**") {
                return Err(bad(format!(
                    "path {:?} must be absolute or start with ** (findings have absolute paths)",
                    r.path
                )));
            }
            let path = glob(&r.path, true).map_err(|e| bad(format!("path: {e}")))?;
            let role = match &r.role {
                Some(p) => Some(glob(p, false).map_err(|e| bad(format!("role: {e}")))?),
                None => None,
            };
            self.0.push(Rule {
                kind,
                path,
                role,
                why: SuppressedBy {
                    reason: r.reason,
                    source: r.source,
                    rule: format!("{origin}#{}", i + 1),
                },
            });
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first rule that matches `f`, made by a process with role `role` (if known).
    pub fn matching(&self, f: &Finding, role: Option<&str>) -> Option<&SuppressedBy> {
        let subject = match (&f.entry, f.kind) {
            (Some(e), FindingKind::UnsyncedParentDir) => {
                Path::new(&f.path).join(e).to_string_lossy().into_owned()
            }
            _ => f.path.clone(),
        };
        self.0
            .iter()
            .find(|r| {
                r.kind.is_none_or(|k| k == f.kind)
                    && r.path.is_match(&subject)
                    && r.role.as_ref().is_none_or(|g| {
                        g.is_match(&f.comm) || role.is_some_and(|role| g.is_match(role))
                    })
            })
            .map(|r| &r.why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(kind: FindingKind, path: &str, entry: Option<&str>) -> Finding {
        Finding {
            kind,
            path: path.into(),
            comm: "postgres".into(),
            entry: entry.map(Into::into),
            ..Finding::blank()
        }
    }

    const RULES: &str = r#"
[[rule]]
kind = "unsynced_write"
path = "**/pg_stat/*"
reason = "stats are reset after a crash"
source = "pgstat.c"

[[rule]]
kind = "any"
path = "/data/log/**"
role = "postgres: logger*"
reason = "logs"
"#;

    #[test]
    fn kind_path_and_role_must_all_match() {
        let mut r = Rules::default();
        r.add(RULES, "t.toml").unwrap();
        let stat = finding(
            FindingKind::UnsyncedWrite,
            "/data/pg_stat/pgstat.stat",
            None,
        );
        let why = r.matching(&stat, None).unwrap();
        assert_eq!(why.rule, "t.toml#1");
        assert_eq!(why.source.as_deref(), Some("pgstat.c"));
        // `*` stays within one component.
        let deeper = finding(FindingKind::UnsyncedWrite, "/data/pg_stat/x/y", None);
        assert!(r.matching(&deeper, None).is_none());
        let wrong_kind = finding(FindingKind::FsyncError, "/data/pg_stat/pgstat.stat", None);
        assert!(r.matching(&wrong_kind, None).is_none());
        let log = finding(FindingKind::UnsyncedWrite, "/data/log/a/b.log", None);
        assert!(r.matching(&log, Some("postgres: checkpointer")).is_none());
        assert_eq!(
            r.matching(&log, Some("postgres: logger")).unwrap().rule,
            "t.toml#2"
        );
    }

    #[test]
    fn entry_findings_match_on_dir_and_entry() {
        let mut r = Rules::default();
        r.add(
            "[[rule]]\nkind = \"unsynced_parent_dir\"\npath = \"**/pg_subtrans/*\"\nreason = \"r\"\n",
            "t",
        )
        .unwrap();
        let f = finding(
            FindingKind::UnsyncedParentDir,
            "/d/pg_subtrans",
            Some("0000"),
        );
        assert!(r.matching(&f, None).is_some());
        let other = finding(FindingKind::UnsyncedParentDir, "/d/base", Some("0000"));
        assert!(r.matching(&other, None).is_none());
    }

    #[test]
    fn bad_rules_are_one_clear_sentence() {
        let err = |text: &str| {
            Rules::default()
                .add(text, "s.toml")
                .unwrap_err()
                .to_string()
        };
        let e = err("[[rule]]\nkind = \"x\"\npath = \"/a\"\nreason = \"r\"\n");
        assert!(
            e.starts_with("suppression file s.toml, rule 1: unknown kind \"x\""),
            "{e}"
        );
        let e = err("[[rule]]\nkind = \"any\"\npath = \"/a\"\n");
        assert!(e.contains("missing field `reason`"), "{e}");
        let e = err("[[rule]]\nkind = \"any\"\npath = \"/a\"\nreason = \" \"\n");
        assert!(e.contains("the reason is empty"), "{e}");
        let e = err("[[rule]]\nkind = \"any\"\npath = \"a/*\"\nreason = \"r\"\n");
        assert!(e.contains("must be absolute"), "{e}");
        let e = err("[[rule]]\nkind = \"any\"\npath = \"/a/[\"\nreason = \"r\"\n");
        assert!(e.contains("path:"), "{e}");
        let e = Rules::load(&["oracle".into()], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown profile \"oracle\" (known: postgresql, redis, sqlite, git)"
        );
    }

    #[test]
    fn every_shipped_profile_loads_with_reasons_and_sources() {
        for (name, text) in PROFILES {
            let mut r = Rules::default();
            r.add(text, name).unwrap();
            assert!(r.0.len() >= 3, "{name}: {} rules", r.0.len());
            for rule in &r.0 {
                assert!(
                    rule.why.source.is_some(),
                    "{name}: {} has no source",
                    rule.why.rule
                );
            }
        }
    }
}
