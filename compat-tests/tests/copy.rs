//! `docker cp` both ways, for running and stopped containers, and the
//! ways a container's own symlinks or a hostile archive might try to reach
//! the host: every path must stay inside the container's root.

use std::path::Path;

use base64::Engine as _;
use berth_compat_tests::Berth;

/// (name, kind, data, link target) of one entry.
type Entry<'a> = (&'a str, tar::EntryType, &'a [u8], &'a str);

fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut ar = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        if kind.is_symlink() {
            h.set_link_name(link).unwrap();
        }
        // Raw names: the tar crate would refuse `..` and absolute ones.
        let raw = name.as_bytes();
        h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
        h.set_cksum();
        ar.append(&h, *data).unwrap();
    }
    ar.into_inner().unwrap()
}

#[test]
fn copies_files_and_directories_both_ways() {
    let b = Berth::start();
    b.load_busybox();
    let host = b.data_root().parent().unwrap().join("cp-host");
    std::fs::create_dir_all(host.join("dir/sub")).unwrap();
    std::fs::write(host.join("dir/sub/f"), "nested\n").unwrap();
    std::fs::write(host.join("one.txt"), "one\n").unwrap();
    let h = |p: &str| host.join(p).display().to_string();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/in && echo content > /data/in/x && sleep 300",
    ])
    .ok();
    b.docker(&[
        "exec",
        "box",
        "sh",
        "-c",
        "until [ -e /data/in/x ]; do sleep 0.05; done",
    ])
    .ok();

    // Host → container: a file, a directory, ownership (root without -a).
    b.docker(&["cp", &h("one.txt"), "box:/data/"]).ok();
    b.docker(&["cp", &h("dir"), "box:/data/copied"]).ok();
    assert_eq!(
        b.docker(&["exec", "box", "cat", "/data/one.txt", "/data/copied/sub/f"])
            .ok()
            .stdout,
        "one\nnested\n"
    );
    assert_eq!(
        b.docker(&["exec", "box", "stat", "-c", "%u:%g", "/data/copied/sub/f"])
            .ok()
            .out(),
        "0:0"
    );

    // Container → host: a file renamed, a directory, a directory's contents.
    b.docker(&["cp", "box:/data/in/x", &h("x-copy")]).ok();
    assert_eq!(
        std::fs::read_to_string(host.join("x-copy")).unwrap(),
        "content\n"
    );
    b.docker(&["cp", "box:/data", &h("data-copy")]).ok();
    assert_eq!(
        std::fs::read_to_string(host.join("data-copy/copied/sub/f")).unwrap(),
        "nested\n"
    );
    std::fs::create_dir_all(host.join("contents")).unwrap();
    b.docker(&["cp", "box:/data/in/.", &h("contents")]).ok();
    assert_eq!(
        std::fs::read_to_string(host.join("contents/x")).unwrap(),
        "content\n"
    );
    // To stdout as a tar, and the path's stat in the HEAD answer.
    let tar = b
        .docker_cmd(&["cp", "box:/data/in/x", "-"])
        .output()
        .unwrap();
    let mut ar = tar::Archive::new(&tar.stdout[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["x"]);
    let head = b.api("HEAD", "/v1.50/containers/box/archive?path=/data/in", None);
    assert_eq!(head.status, 200);
    let stat: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(head.header("x-docker-container-path-stat").unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stat["name"], "in");
    assert_eq!(
        stat["mode"].as_u64().unwrap() >> 31,
        1,
        "a directory in Go's FileMode: {stat}"
    );

    // The files Berth mounts over /etc read as the container sees them.
    b.docker(&["cp", "box:/etc/hostname", &h("hostname")]).ok();
    let hostname = b
        .docker(&["exec", "box", "hostname"])
        .ok()
        .out()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(host.join("hostname"))
            .unwrap()
            .trim(),
        hostname
    );
    let missing = b.docker(&["cp", "box:/nonexist", &h("nothing")]);
    assert!(
        missing
            .stderr
            .contains("Could not find the file /nonexist in container box"),
        "{}",
        missing.stderr
    );
    let into_file = b.api(
        "PUT",
        "/v1.50/containers/box/archive?path=/data/in/x",
        Some(&tar_of(&[("y", tar::EntryType::Regular, b"y", "")])),
    );
    // dockerd answers 500 with these words (the differential corpus
    // checks it against dockerd).
    assert_eq!(into_file.status, 500, "{}", into_file.text());
    assert!(into_file
        .text()
        .contains("extraction point is not a directory"));

    // A stopped container: its filesystem is mounted for the copy only.
    b.docker(&["stop", "-t", "0", "box"]).ok();
    b.docker(&["cp", &h("one.txt"), "box:/data/after-stop"])
        .ok();
    b.docker(&["cp", "box:/data/after-stop", &h("after-stop")])
        .ok();
    assert_eq!(
        std::fs::read_to_string(host.join("after-stop")).unwrap(),
        "one\n"
    );
    assert!(
        !b.mounts().iter().any(|m| m.contains("/rootfs")),
        "{:?}",
        b.mounts()
    );
    b.docker(&["rm", "box"]).ok();
    std::fs::remove_dir_all(&host).unwrap();
    b.finish();
}

#[test]
fn container_symlinks_and_hostile_archives_stay_inside() {
    let b = Berth::start();
    b.load_busybox();
    let host = b.data_root().parent().unwrap().join("cp-victim");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("secret"), "host secret\n").unwrap();
    let victim = host.display().to_string();
    b.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "300"])
        .ok();
    // Links that would reach the host if followed outside the container.
    let script = format!("ln -s / /rootlink; ln -s ../../../../../../../..{victim} /rel; ln -s {victim} /abs; echo inside > /tmp/f");
    b.docker(&["exec", "box", "sh", "-c", &script]).ok();

    // Reading: every route to the host's file fails.
    let out = host.join("out");
    for src in [
        format!("box:/rootlink{victim}/secret"),
        "box:/rel/secret".to_string(),
        "box:/abs/secret".to_string(),
        format!("box:/../../../..{victim}/secret"),
    ] {
        let r = b.docker(&["cp", &src, &out.display().to_string()]);
        assert_ne!(r.code, 0, "{src} was copied out");
        assert!(
            r.stderr.contains("Could not find the file"),
            "{src}: {}",
            r.stderr
        );
        assert!(!out.exists());
    }
    let followed = b.docker(&["cp", "-L", "box:/abs", &out.display().to_string()]);
    assert_ne!(followed.code, 0, "-L followed /abs to the host");

    // Writing through the container's links lands inside the container.
    let payload = host.join("payload");
    std::fs::write(&payload, "planted\n").unwrap();
    for dst in [
        format!("box:/rootlink{victim}/"),
        "box:/abs/".to_string(),
        "box:/rel/".to_string(),
    ] {
        let _ = b.docker(&["exec", "box", "mkdir", "-p", &victim]);
        b.docker(&["cp", &payload.display().to_string(), &dst]).ok();
        assert_eq!(
            std::fs::read_to_string(host.join("secret")).unwrap(),
            "host secret\n"
        );
        assert!(
            std::fs::read_dir(&host).unwrap().count() == 2,
            "something was written on the host through {dst}"
        );
    }
    assert_eq!(
        b.docker(&["exec", "box", "cat", &format!("{victim}/payload")])
            .ok()
            .out(),
        "planted"
    );

    // Hostile archives through the API: `..`, absolute names, a symlink
    // planted and then written through.
    let cases: [&[Entry]; 3] = [
        &[(
            "../../../../../../../../tmp/berth-cp-escape",
            tar::EntryType::Regular,
            b"x",
            "",
        )],
        &[
            ("lnk", tar::EntryType::Symlink, b"", "/"),
            ("lnk/tmp/berth-cp-escape", tar::EntryType::Regular, b"x", ""),
        ],
        &[
            (
                "abs",
                tar::EntryType::Symlink,
                b"",
                "../../../../../../../tmp",
            ),
            ("abs/berth-cp-escape", tar::EntryType::Regular, b"x", ""),
        ],
    ];
    for entries in cases {
        let r = b.api(
            "PUT",
            "/v1.50/containers/box/archive?path=/tmp",
            Some(&tar_of(entries)),
        );
        assert!(
            r.status == 200 || r.status == 400,
            "{} {}",
            r.status,
            r.text()
        );
        assert!(
            !Path::new("/tmp/berth-cp-escape").exists(),
            "an archive wrote outside the container: {entries:?}"
        );
    }
    b.docker(&["rm", "-f", "box"]).ok();
    std::fs::remove_dir_all(&host).unwrap();
    b.finish();
}
