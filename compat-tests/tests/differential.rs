//! dockerd is the oracle: every scenario of compat-tests/differential/ is
//! sent, request by request, to Debian's dockerd and to Berth, and their
//! answers are compared as clients read them (see `oracle.rs`). A
//! divergence fails the test unless api-spec/divergences.md lists it with
//! its reason. The summary line says how many scenarios ran and what was
//! found; the whole report is written to target/differential-report.txt.

use std::io::Write;
use std::path::PathBuf;

use berth_compat_tests::dockerd::Dockerd;
use berth_compat_tests::oracle::{self, Divergence, Vars};
use berth_compat_tests::{workspace_root, Berth};

fn corpus_files() -> Vec<PathBuf> {
    let dir = workspace_root().join("compat-tests/differential");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn berth_answers_as_dockerd_does() {
    // A filter for working on a few scenarios: BERTH_DIFFERENTIAL=prefix.
    let only = std::env::var("BERTH_DIFFERENTIAL").unwrap_or_default();
    let dockerd = Dockerd::start().unwrap_or_else(|e| panic!("the oracle: {e}"));
    let berth = Berth::start();
    dockerd.load_busybox();
    berth.load_busybox();

    let mut scenarios = 0;
    let mut requests = 0;
    let mut found: Vec<Divergence> = Vec::new();
    for file in corpus_files() {
        for sc in oracle::load_corpus(&file) {
            if !sc.name.starts_with(&only) {
                continue;
            }
            scenarios += 1;
            let (mut ov, mut bv) = (Vars::new(), Vars::new());
            for (n, step) in sc.steps.iter().enumerate() {
                let o = oracle::send(&dockerd.socket, step, &ov)
                    .unwrap_or_else(|e| panic!("{}#{n} to dockerd: {e}", sc.name));
                let b = oracle::send(&berth.socket, step, &bv)
                    .unwrap_or_else(|e| panic!("{}#{n} to berth: {e}\n{}", sc.name, berth.log()));
                if step.compare {
                    requests += 1;
                    found.extend(oracle::compare(&sc.name, n, step, (&o, &ov), (&b, &bv)));
                }
                for (var, pointer) in &step.save {
                    if let Some(v) = oracle::pick(&o, pointer) {
                        ov.insert(var.clone(), v);
                    }
                    if let Some(v) = oracle::pick(&b, pointer) {
                        bv.insert(var.clone(), v);
                    }
                }
            }
            for step in &sc.cleanup {
                let _ = oracle::send(&dockerd.socket, step, &ov);
                let _ = oracle::send(&berth.socket, step, &bv);
            }
        }
    }

    let listed = oracle::listed_divergences(&workspace_root().join("api-spec/divergences.md"));
    let mut report = String::new();
    let mut unlisted = 0;
    for d in &found {
        let known = listed.iter().any(|p| oracle::glob(p, &d.key));
        if !known {
            unlisted += 1;
        }
        report.push_str(&format!(
            "{} {}\n  {}\n",
            if known { "listed  " } else { "DIVERGES" },
            d.key,
            d.detail
        ));
    }
    if only.is_empty() {
        for p in &listed {
            if !found.iter().any(|d| oracle::glob(p, &d.key)) {
                report.push_str(&format!(
                    "stale entry in divergences.md (matched nothing): {p}\n"
                ));
            }
        }
    }
    let summary = format!(
        "differential: {scenarios} scenarios, {requests} requests compared with dockerd, {} divergences ({} listed in api-spec/divergences.md, {unlisted} not listed)\n",
        found.len(),
        found.len() - unlisted
    );
    report.push_str(&summary);
    let _ = std::fs::write(
        workspace_root().join("target/differential-report.txt"),
        &report,
    );
    // Straight to the terminal: cargo's capture would hide a passing
    // test's summary, and CI's log should show it.
    let _ = std::io::stderr().write_all(summary.as_bytes());
    berth.finish();
    dockerd.finish();
    assert_eq!(unlisted, 0, "divergences from dockerd:\n{report}");
}
