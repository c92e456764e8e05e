//! Images made from containers and moved as files: `docker commit`,
//! `docker export`, `docker import --change`, `docker save`/`load` of
//! several images, `docker history`; and the housekeeping around them:
//! `docker image prune`, `docker system df`, `docker system prune`.

use berth_compat_tests::registry::Registry;
use berth_compat_tests::Berth;

#[test]
fn commit_keeps_changes_deletions_and_opaque_directories() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "--name",
        "work",
        "busybox",
        "sh",
        "-c",
        "echo made > /made.txt; rm /etc/group; rm -rf /home; mkdir /home; echo only > /home/only.txt",
    ])
    .ok();
    let id = b
        .docker(&[
            "commit",
            "-m",
            "my change",
            "-a",
            "Ann Author",
            "-c",
            "CMD [\"cat\", \"/made.txt\"]",
            "-c",
            "ENV STAGE=committed",
            "work",
            "snap:1",
        ])
        .ok();
    assert!(id.out().starts_with("sha256:"), "{}", id.stdout);
    assert_eq!(b.docker(&["run", "--rm", "snap:1"]).ok().out(), "made");
    let check = b
        .docker(&[
            "run",
            "--rm",
            "snap:1",
            "sh",
            "-c",
            "test -e /etc/group && echo group-back; ls /home; echo $STAGE",
        ])
        .ok();
    assert_eq!(check.stdout, "only.txt\ncommitted\n");

    let inspect = b
        .docker(&[
            "image",
            "inspect",
            "-f",
            "{{.Comment}}|{{.Author}}|{{len .RootFS.Layers}}",
            "snap:1",
        ])
        .ok();
    assert_eq!(inspect.out(), "my change|Ann Author|2");
    let history = b
        .docker(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}|{{.Comment}}",
            "snap:1",
        ])
        .ok();
    let first = history.stdout.lines().next().unwrap();
    assert!(
        first.starts_with("sh -c echo made > /made.txt") && first.ends_with("|my change"),
        "{}",
        history.stdout
    );
    assert_eq!(history.stdout.lines().count(), 2, "{}", history.stdout);

    // A commit of the committed image's container stacks a third layer.
    b.docker(&[
        "run",
        "--name",
        "again",
        "snap:1",
        "sh",
        "-c",
        "echo more > /more.txt",
    ])
    .ok();
    b.docker(&["commit", "again", "snap:2"]).ok();
    assert_eq!(
        b.docker(&["run", "--rm", "snap:2", "cat", "/more.txt", "/made.txt"])
            .ok()
            .stdout,
        "more\nmade\n"
    );
    b.finish();
}

#[test]
fn export_then_import_gives_the_same_files() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&["create", "--name", "box", "busybox"]).ok();
    let tar = b.root.join("box.tar");
    b.docker(&["export", "-o", tar.to_str().unwrap(), "box"])
        .ok();
    // Hard links stay links: busybox's applets are one file, not 400 copies.
    let size = std::fs::metadata(&tar).unwrap().len();
    assert!(size < 4_000_000, "export is {size} bytes");
    let listing = std::process::Command::new("tar")
        .arg("-tvf")
        .arg(&tar)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.lines().any(|l| l.contains("bin/sh link to")),
        "{listing}"
    );

    let data = std::fs::read(&tar).unwrap();
    let imported = b
        .docker_stdin(
            &[
                "import",
                "-c",
                "CMD [\"echo\", \"from import\"]",
                "-c",
                "LABEL origin=export",
                "-m",
                "round trip",
                "-",
                "flat:1",
            ],
            &data,
        )
        .ok();
    assert!(imported.out().starts_with("sha256:"), "{}", imported.stdout);
    assert_eq!(
        b.docker(&["run", "--rm", "flat:1"]).ok().out(),
        "from import"
    );
    assert_eq!(
        b.docker(&[
            "image",
            "inspect",
            "-f",
            "{{.Config.Labels.origin}} {{.Comment}}",
            "flat:1"
        ])
        .ok()
        .out(),
        "export round trip"
    );
    let bad = b.docker_stdin(&["import", "-c", "RUN rm -rf /", "-", "flat:2"], &data);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("RUN is not a valid change command"),
        "{}",
        bad.stderr
    );
    b.finish();
}

#[test]
fn save_and_load_several_images() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "--name",
        "wk",
        "busybox",
        "sh",
        "-c",
        "echo saved > /saved.txt",
    ])
    .ok();
    b.docker(&["commit", "wk", "app:1"]).ok();
    b.docker(&["tag", "busybox", "base:2"]).ok();
    let ids_before = b
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .ok()
        .stdout;
    let archive = b.root.join("all.tar");
    b.docker(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "busybox",
        "app:1",
        "base:2",
    ])
    .ok();
    b.docker(&["rm", "wk"]).ok();
    b.docker(&["rmi", "busybox", "app:1", "base:2"]).ok();
    assert!(b.docker(&["images", "-q"]).ok().stdout.trim().is_empty());

    let loaded = b.docker(&["load", "-i", archive.to_str().unwrap()]).ok();
    for name in ["busybox:latest", "app:1", "base:2"] {
        assert!(
            loaded.stdout.contains(&format!("Loaded image: {name}")),
            "{}",
            loaded.stdout
        );
    }
    let ids_after = b
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .ok()
        .stdout;
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&ids_after), sorted(&ids_before));
    assert_eq!(
        b.docker(&["run", "--rm", "app:1", "cat", "/saved.txt"])
            .ok()
            .out(),
        "saved"
    );

    // GET /images/{name}/get saves one image; a missing one is a 404.
    let one = b.api("GET", "/v1.50/images/app:1/get", None);
    assert_eq!(one.status, 200);
    assert!(one.body.len() > 2_000_000);
    assert_eq!(
        b.api("GET", "/v1.50/images/get?names=nope:1", None).status,
        404
    );
    b.finish();
}

#[test]
fn prune_df_and_system_prune() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run", "--name", "keep", "--label", "keep=yes", "busybox", "true",
    ])
    .ok();
    b.docker(&[
        "run",
        "--name",
        "drop",
        "busybox",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /blob",
    ])
    .ok();
    b.docker(&["commit", "--change", "LABEL tier=test", "drop", "tmp:1"])
        .ok();
    b.docker(&["commit", "drop", "dangling:1"]).ok();
    b.docker(&["tag", "tmp:1", "dangling:1"]).ok(); // dangling:1's old image loses its only name

    let df = b
        .docker(&[
            "system",
            "df",
            "--format",
            "{{.Type}} {{.TotalCount}} {{.Active}}",
        ])
        .ok();
    assert!(df.stdout.contains("Images 3 1"), "{}", df.stdout);
    assert!(df.stdout.contains("Containers 2 0"), "{}", df.stdout);

    // Dangling only: the untagged commit goes, named images stay.
    let pruned = b.docker(&["image", "prune", "-f"]).ok();
    assert_eq!(
        pruned.stdout.matches("deleted: sha256:").count(),
        1,
        "{}",
        pruned.stdout
    );
    let ids: std::collections::HashSet<String> = b
        .docker(&["images", "-q"])
        .ok()
        .stdout
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    // A label filter that matches nothing keeps everything.
    let none = b
        .docker(&["image", "prune", "-a", "-f", "--filter", "label=tier=prod"])
        .ok();
    assert!(!none.stdout.contains("deleted:"), "{}", none.stdout);
    // Containers first (filtered by label), then every unused image.
    let c = b
        .docker(&["container", "prune", "-f", "--filter", "label!=keep=yes"])
        .ok();
    assert_eq!(
        c.stdout.lines().filter(|l| l.len() == 64).count(),
        1,
        "{}",
        c.stdout
    );
    assert_eq!(
        b.docker(&["ps", "-a", "--format", "{{.Names}}"]).ok().out(),
        "keep"
    );
    let sys = b.docker(&["system", "prune", "-a", "-f"]).ok();
    assert!(sys.stdout.contains("Deleted Containers:"), "{}", sys.stdout);
    assert!(sys.stdout.contains("untagged: tmp:1"), "{}", sys.stdout);
    assert!(b.docker(&["images", "-q"]).ok().stdout.trim().is_empty());
    assert!(b.docker(&["ps", "-aq"]).ok().stdout.trim().is_empty());
    // Nothing of the images is left on disk.
    assert_eq!(
        std::fs::read_dir(b.data_root().join("snapshots"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(b.data_root().join("content/sha256"))
            .unwrap()
            .count(),
        0
    );
    b.finish();
}

#[test]
fn committed_images_push_and_pull_back() {
    let reg = Registry::start();
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "--name",
        "wk",
        "busybox",
        "sh",
        "-c",
        "echo pushed > /p.txt",
    ])
    .ok();
    let name = format!("{}/committed:1", reg.addr);
    b.docker(&["commit", "wk", &name]).ok();
    let pushed = b.docker(&["push", &name]).ok();
    assert_eq!(
        pushed.stdout.matches(": Pushed").count(),
        2,
        "{}",
        pushed.stdout
    );

    // GET /distribution/{name}/json describes what the registry has.
    let d = b.api("GET", &format!("/v1.50/distribution/{name}/json"), None);
    assert_eq!(d.status, 200, "{}", d.text());
    let d = d.json();
    assert_eq!(
        d["Descriptor"]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let arch = if std::env::consts::ARCH == "x86_64" {
        "amd64"
    } else {
        "arm64"
    };
    assert_eq!(d["Platforms"][0]["architecture"], arch);
    assert!(
        pushed
            .stdout
            .contains(d["Descriptor"]["digest"].as_str().unwrap()),
        "{}",
        pushed.stdout
    );

    b.docker(&["rm", "wk"]).ok();
    b.docker(&["rmi", &name, "busybox"]).ok();
    b.docker(&["pull", &name]).ok();
    assert_eq!(
        b.docker(&["run", "--rm", &name, "cat", "/p.txt"])
            .ok()
            .out(),
        "pushed"
    );
    b.finish();
}
