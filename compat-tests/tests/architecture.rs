//! ARCHITECTURE.md states two lists a change can make untrue without
//! noticing: each crate's dependencies, and the files allowed unsafe code.
//! These tests read both from the document and compare them with the tree,
//! so the document changes with the code or the suite fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use berth_compat_tests::workspace_root as root;

fn architecture() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap()
}

/// The words in backticks of a piece of Markdown, in order.
fn quoted(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The `[dependencies]` names of a Cargo.toml (dev-dependencies excluded).
fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut names = BTreeSet::new();
    let mut in_deps = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', ' ', '.']).next().unwrap();
            names.insert(name.trim_matches('"').to_string());
        }
    }
    names
}

#[test]
fn every_crate_depends_on_exactly_what_the_crate_table_says() {
    let doc = architecture();
    let table = &doc[doc.find("## Crates").expect("a Crates section")..];
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert!(rows.len() >= 7, "crate table rows: {rows:?}");
    let mut wrong = Vec::new();
    for row in &rows {
        let (name, path, deps) = (row[1], row[2], row[4]);
        let listed: BTreeSet<String> = quoted(deps).into_iter().collect();
        let actual = dependencies(&root().join(path).join("Cargo.toml"));
        if listed != actual {
            let missing: Vec<_> = actual.difference(&listed).collect();
            let extra: Vec<_> = listed.difference(&actual).collect();
            wrong.push(format!(
                "{name}: not in the table {missing:?}, not a dependency {extra:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "ARCHITECTURE.md's crate table: {wrong:#?}"
    );
}

#[test]
fn the_engine_and_the_core_keep_their_layering() {
    let engine = dependencies(&root().join("engine/Cargo.toml"));
    let berth: Vec<_> = engine.iter().filter(|d| d.starts_with("berth-")).collect();
    assert_eq!(
        berth,
        ["berth-proto"],
        "the engine depends on berth-proto only"
    );
    let shim = dependencies(&root().join("core/shim/Cargo.toml"));
    assert!(
        !shim.contains("tokio"),
        "the shim has no async runtime: {shim:?}"
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            // fuzz: its own workspace, not part of the build.
            if name != "target" && name != "fuzz" {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_listed_files_allow_unsafe_code() {
    let doc = architecture();
    let start = doc
        .find("- `#![deny(unsafe_code)]` at every crate root")
        .expect("the unsafe paragraph");
    let end = start + doc[start..].find("\n\n").unwrap();
    let listed: BTreeSet<String> = quoted(&doc[start..end])
        .into_iter()
        .filter(|q| q.ends_with(".rs") && !q.starts_with("compat-tests/"))
        .collect();
    let mut files = Vec::new();
    for dir in ["engine/src", "core"] {
        rust_files(&root().join(dir), &mut files);
    }
    let allowing: BTreeSet<String> = files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("allow(unsafe_code)")
        })
        .map(|f| {
            f.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        allowing, listed,
        "files that allow unsafe code vs ARCHITECTURE.md's list"
    );
}

#[test]
fn every_route_is_in_the_endpoint_map() {
    let doc = architecture();
    let start = doc
        .find("## Endpoint map")
        .expect("an Endpoint map section");
    let end = start + 3 + doc[start + 3..].find("\n## ").unwrap();
    let mut mapped = BTreeSet::new();
    for row in doc[start..end].lines().filter(|l| l.starts_with("| `/")) {
        let cell = row.split('|').nth(1).unwrap();
        // "`/containers/{id}/pause`, `/unpause`": the second replaces the
        // first's last segment.
        let mut parent = String::new();
        for path in quoted(cell) {
            let full = if parent.is_empty() || path.matches('/').count() > 1 {
                path.clone()
            } else {
                format!("{}{path}", &parent[..parent.rfind('/').unwrap()])
            };
            parent = full.clone();
            mapped.insert(full);
        }
    }
    let router = std::fs::read_to_string(root().join("engine/src/api/mod.rs")).unwrap();
    let routes: BTreeSet<String> = router
        .split(".route(")
        .skip(1)
        .filter_map(|r| r.trim_start().strip_prefix('"'))
        .map(|r| r[..r.find('"').unwrap()].to_string())
        .collect();
    assert!(routes.len() > 40, "routes read: {routes:?}");
    let missing: Vec<_> = routes.difference(&mapped).collect();
    assert!(
        missing.is_empty(),
        "routes not in ARCHITECTURE.md's endpoint map: {missing:?}"
    );
}
