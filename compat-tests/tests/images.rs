//! Images: load (Docker and OCI layouts), import, tag, rmi, images, inspect.

use berth_compat_tests::{images, Berth};

#[test]
fn load_both_archive_layouts_and_share_layers() {
    let b = Berth::start();
    let r = b
        .docker(&["load", "-i", images::busybox_tar().to_str().unwrap()])
        .ok();
    assert_eq!(r.out(), "Loaded image: busybox:latest");
    let oci = images::busybox_oci_tar("ocibox:1.0");
    let r = b.docker(&["load", "-i", oci.to_str().unwrap()]).ok();
    let _ = std::fs::remove_file(&oci);
    assert_eq!(r.out(), "Loaded image: ocibox:1.0");
    // Same config, so the same image id; and the layer was unpacked once.
    let ids = b.docker(&["images", "-q", "--no-trunc"]).ok();
    let unique: std::collections::HashSet<&str> = ids.stdout.lines().collect();
    assert_eq!(unique.len(), 1, "{}", ids.stdout);
    let snapshots = std::fs::read_dir(b.data_root().join("snapshots"))
        .unwrap()
        .count();
    assert_eq!(snapshots, 1);
    assert_eq!(
        b.docker(&["run", "--rm", "ocibox:1.0", "echo", "oci"])
            .ok()
            .out(),
        "oci"
    );
    b.finish();
}

#[test]
fn load_rejects_garbage_and_loses_nothing() {
    let b = Berth::start();
    b.load_busybox();
    let r = b.docker_stdin(
        &["load"],
        b"this is not a tar archive at all, not even close............",
    );
    // dockerd answers 200 and tells the error in the stream; the CLI
    // prints it and fails.
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("invalid tar archive"), "{r:?}");
    assert_eq!(
        b.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .ok()
            .out(),
        "busybox:latest"
    );
    b.finish();
}

#[test]
fn import_from_file_and_stdin() {
    let b = Berth::start();
    // A root filesystem tar: the busybox layer itself.
    let mut ar = tar::Archive::new(std::fs::File::open(images::busybox_tar()).unwrap());
    let mut layer = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path()
            .unwrap()
            .display()
            .to_string()
            .ends_with("layer.tar")
        {
            std::io::Read::read_to_end(&mut e, &mut layer).unwrap();
        }
    }
    let file = b.root.join("rootfs.tar");
    std::fs::write(&file, &layer).unwrap();
    let r = b
        .docker(&["import", file.to_str().unwrap(), "imported:file"])
        .ok();
    assert!(r.out().starts_with("sha256:"), "{r:?}");
    let r = b
        .docker_stdin(&["import", "-", "imported:stdin"], &layer)
        .ok();
    assert!(r.out().starts_with("sha256:"), "{r:?}");
    assert_eq!(
        b.docker(&["run", "--rm", "imported:stdin", "/bin/echo", "imported"])
            .ok()
            .out(),
        "imported"
    );
    // An imported image has no command of its own.
    let r = b.docker(&["run", "--rm", "imported:file"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("no command specified"), "{r:?}");
    b.finish();
}

#[test]
fn tag_rmi_and_conflicts() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&["tag", "busybox", "mybox:v1"]).ok();
    b.docker(&["tag", "busybox:latest", "localhost:5000/team/box"])
        .ok();
    let tags = b
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok();
    let mut tags: Vec<&str> = tags.stdout.lines().collect();
    tags.sort();
    assert_eq!(
        tags,
        vec![
            "busybox:latest",
            "localhost:5000/team/box:latest",
            "mybox:v1"
        ]
    );
    assert_eq!(
        b.docker(&[
            "images",
            "--format",
            "{{.Repository}}",
            "--filter",
            "reference=my*"
        ])
        .ok()
        .out(),
        "mybox"
    );
    // Removing one of several tags only untags.
    assert_eq!(
        b.docker(&["rmi", "mybox:v1"]).ok().out(),
        "Untagged: mybox:v1"
    );
    // By id with several tags: refused without force.
    let id = b
        .docker(&["inspect", "-f", "{{.Id}}", "busybox"])
        .ok()
        .out()
        .to_string();
    let r = b.docker(&["rmi", &id[7..19]]);
    assert!(
        r.stderr.contains("must be forced")
            && r.stderr.contains("referenced in multiple repositories"),
        "{r:?}"
    );
    // In use by a container: refused.
    b.docker(&["create", "--name", "user", "busybox", "true"])
        .ok();
    b.docker(&["rmi", "localhost:5000/team/box"]).ok();
    let r = b.docker(&["rmi", "busybox"]);
    assert!(
        r.stderr.contains("conflict") && r.stderr.contains("is using its referenced image"),
        "{r:?}"
    );
    b.docker(&["rm", "user"]).ok();
    let r = b.docker(&["rmi", "busybox"]).ok();
    assert!(
        r.stdout.contains("Untagged: busybox:latest")
            && r.stdout.contains(&format!("Deleted: {id}")),
        "{r:?}"
    );
    assert_eq!(b.docker(&["images", "-q"]).ok().out(), "");
    assert_eq!(
        std::fs::read_dir(b.data_root().join("snapshots"))
            .unwrap()
            .count(),
        0,
        "layers of a deleted image remain"
    );
    let r = b.docker(&["rmi", "busybox"]);
    assert!(r.stderr.contains("No such image: busybox"), "{r:?}");
    b.finish();
}

#[test]
fn image_inspect_and_missing_image() {
    let b = Berth::start();
    b.load_busybox();
    let v: serde_json::Value =
        serde_json::from_str(&b.docker(&["image", "inspect", "busybox"]).ok().stdout).unwrap();
    let img = &v[0];
    assert_eq!(img["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["RootFS"]["Type"], "layers");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert!(img["Size"].as_i64().unwrap() > 1_000_000);
    // Unknown image: create answers 404, the CLI tries to pull, which fails.
    let r = b.docker(&["run", "--rm", "nosuchimage"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr
            .contains("Unable to find image 'nosuchimage:latest' locally"),
        "{r:?}"
    );
    let r = b.docker(&["tag", "busybox", "Bad:Name"]);
    assert!(r.stderr.contains("invalid reference format"), "{r:?}");
    b.finish();
}

#[test]
fn hostile_layers_write_nothing_outside_and_store_nothing() {
    let b = Berth::start();
    let marker = format!("/tmp/berth-hostile-marker-{}", std::process::id());
    let tar = images::hostile_tar(&b.root, &marker);
    let r = b.docker(&["load", "-i", tar.to_str().unwrap()]);
    assert_ne!(r.code, 0, "a layer with a breakout was accepted: {r:?}");
    assert!(r.stderr.contains("breakout"), "{r:?}");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the layer wrote {marker} on the host"
    );
    assert_eq!(b.docker(&["images", "-q"]).ok().out(), "");
    assert_eq!(
        std::fs::read_dir(b.data_root().join("snapshots"))
            .unwrap()
            .count(),
        0,
        "a half-unpacked layer was kept"
    );
    b.finish();
}
