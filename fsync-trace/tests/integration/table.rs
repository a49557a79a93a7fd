//! The shared scenario table on this host's tier: the scenarios no other test here runs
//! (the VM suite runs every one under every tier in Debian 6.1).
use super::support::*;

/// Scenarios that have a test of their own (`table_scenario`, with more assertions on top).
const WITH_OWN_TEST: &[&str] = &[
    "good",
    "unsynced",
    "rename-unsafe",
    "osync",
    "mmap",
    "fork",
    "link",
    "reopen",
    "io-uring-fsync",
    "uring-write-fsync",
    "uring-unsynced",
    "uring-unordered",
    "uring-linked",
    "uring-sqpoll",
    "uring-namespace",
    "truncate-sync",
    "truncate-unsynced",
    "fallocate",
    "truncate-path",
    "chmod-unsynced",
];

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn the_rest_of_the_shared_table_reports_exactly_what_it_says() {
    for name in WITH_OWN_TEST {
        table_entry(name); // panics if the table lost it
    }
    let mut wrong = Vec::new();
    let mut ran = 0;
    for sc in fsync_trace_workload::scenarios::SCENARIOS {
        if WITH_OWN_TEST.contains(&sc.name) {
            continue;
        }
        let (_g, d, r) = run_table_scenario(sc);
        assert!(
            sc.expected_on(r.0["tier"].as_str().unwrap_or("?"))
                .is_some(),
            "{}: the table expects nothing of it",
            sc.name
        );
        wrong.extend(table_mismatches(sc, &d, &r));
        ran += 1;
    }
    assert!(ran >= 4, "only {ran} scenarios ran");
    assert!(wrong.is_empty(), "{wrong:#?}");
}
