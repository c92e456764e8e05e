//! Volumes and mounts through the docker CLI: named volumes (create with
//! labels, ls filters, inspect, in-use refusal, prune), anonymous volumes
//! from `-v /path` and an image's VOLUME filled with the image's content,
//! `rm -v` and `--rm`, bind mounts (`-v` creates the host path, `--mount`
//! refuses a missing one), tmpfs, `--volumes-from`, and an image whose
//! VOLUME path is a symlink leading out of the container.

use berth_compat_tests::Berth;

fn volumes(b: &Berth, filter: &[&str]) -> Vec<String> {
    let mut args = vec!["volume", "ls", "-q"];
    for f in filter {
        args.extend_from_slice(&["--filter", f]);
    }
    let mut v: Vec<String> = b
        .docker(&args)
        .ok()
        .out()
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn named_volumes_keep_data_and_refuse_removal_in_use() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&["volume", "create", "--label", "team=db", "data1"])
        .ok();
    b.docker(&["volume", "create", "other"]).ok();
    let inspect = b
        .docker(&[
            "volume",
            "inspect",
            "-f",
            "{{.Driver}} {{.Labels.team}} {{.Mountpoint}}",
            "data1",
        ])
        .ok();
    assert_eq!(
        inspect.out(),
        format!("local db {}/volumes/data1/_data", b.data_root().display())
    );
    assert_eq!(volumes(&b, &["label=team=db"]), ["data1"]);
    assert_eq!(volumes(&b, &["name=oth"]), ["other"]);

    // Data outlives the container that wrote it; :ro refuses writes.
    b.docker(&[
        "run",
        "--rm",
        "-v",
        "data1:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ])
    .ok();
    let read = b
        .docker(&[
            "run",
            "--rm",
            "-v",
            "data1:/data:ro",
            "busybox",
            "cat",
            "/data/f",
        ])
        .ok();
    assert_eq!(read.out(), "kept");
    let ro = b.docker(&[
        "run",
        "--rm",
        "-v",
        "data1:/data:ro",
        "busybox",
        "touch",
        "/data/g",
    ]);
    assert!(ro.stderr.contains("Read-only file system"), "{ro:?}");
    // `-v name:/path` creates a volume that does not exist yet.
    b.docker(&["run", "--rm", "-v", "fresh:/x", "busybox", "true"])
        .ok();
    assert!(volumes(&b, &[]).contains(&"fresh".to_string()));

    b.docker(&["create", "--name", "user", "-v", "data1:/data", "busybox"])
        .ok();
    let id = b
        .docker(&["inspect", "-f", "{{.Id}}", "user"])
        .ok()
        .out()
        .to_string();
    assert_eq!(volumes(&b, &["dangling=false"]), ["data1"]);
    let busy = b.docker(&["volume", "rm", "data1"]);
    assert_ne!(busy.code, 0);
    assert!(
        busy.stderr
            .contains(&format!("remove data1: volume is in use - [{id}]")),
        "{busy:?}"
    );
    let mounts = b
        .docker(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}{{end}}",
            "user",
        ])
        .ok();
    assert_eq!(mounts.out(), "volume data1 /data true");
    // rm -v leaves named volumes alone.
    b.docker(&["rm", "-v", "user"]).ok();
    assert!(volumes(&b, &[]).contains(&"data1".to_string()));
    // Prune without --all keeps named volumes; with it, unused ones go.
    b.docker(&["volume", "prune", "-f"]).ok();
    assert_eq!(volumes(&b, &[]), ["data1", "fresh", "other"]);
    b.docker(&["volume", "prune", "-f", "-a", "--filter", "label=team=db"])
        .ok();
    assert_eq!(volumes(&b, &[]), ["fresh", "other"]);
    assert!(!b.data_root().join("volumes/data1").exists());
    b.docker(&["volume", "rm", "fresh", "other"]).ok();
    let missing = b.docker(&["volume", "rm", "nosuch"]);
    assert!(missing.stderr.contains("no such volume"), "{missing:?}");
    let bad = b.docker(&["volume", "create", "../escape"]);
    assert!(
        bad.stderr.contains("includes invalid characters"),
        "{bad:?}"
    );
    assert!(volumes(&b, &[]).is_empty());
}

#[test]
fn anonymous_volumes_are_filled_from_the_image_and_go_with_rm_v() {
    let b = Berth::start();
    b.load_busybox();
    // An image declaring VOLUME /etc: its volume starts with the image's /etc.
    let cid = b.docker(&["create", "busybox"]).ok().out().to_string();
    b.docker(&["commit", "--change", "VOLUME /etc", &cid, "withvol"])
        .ok();
    b.docker(&["rm", &cid]).ok();
    b.docker(&[
        "run", "-d", "--name", "anon", "-v", "/scratch", "withvol", "sleep", "60",
    ])
    .ok();
    let passwd = b
        .docker(&["exec", "anon", "grep", "-c", "root", "/etc/passwd"])
        .ok();
    assert_eq!(passwd.out(), "1");
    // /etc/hosts is still Berth's, mounted over the volume.
    let hosts = b
        .docker(&["exec", "anon", "grep", "-c", "localhost", "/etc/hosts"])
        .ok();
    assert_ne!(hosts.out(), "0");
    let anon = volumes(&b, &[]);
    assert_eq!(anon.len(), 2, "{anon:?}");
    for v in &anon {
        assert_eq!(v.len(), 64);
        let label = b
            .docker(&["volume", "inspect", "-f", "{{json .Labels}}", v])
            .ok();
        assert!(
            label.out().contains("com.docker.volume.anonymous"),
            "{label:?}"
        );
    }
    b.docker(&["rm", "-f", "-v", "anon"]).ok();
    assert!(volumes(&b, &[]).is_empty());
    // --rm removes a container's anonymous volumes, never named ones.
    b.docker(&[
        "run", "--rm", "-v", "/a", "-v", "keep:/b", "busybox", "true",
    ])
    .ok();
    assert_eq!(volumes(&b, &[]), ["keep"]);
    // Prune without -a removes an unused anonymous volume.
    b.docker(&["create", "--name", "left", "-v", "/c", "busybox"])
        .ok();
    b.docker(&["rm", "left"]).ok();
    assert_eq!(volumes(&b, &[]).len(), 2);
    b.docker(&["volume", "prune", "-f"]).ok();
    assert_eq!(volumes(&b, &[]), ["keep"]);
}

#[test]
fn binds_tmpfs_and_volumes_from() {
    let b = Berth::start();
    b.load_busybox();
    let host = b.root.join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "hello\n").unwrap();
    let bind = format!("{}:/h", host.display());
    let out = b
        .docker(&[
            "run",
            "--rm",
            "-v",
            &bind,
            "busybox",
            "sh",
            "-c",
            "cat /h/from-host; echo back > /h/from-container",
        ])
        .ok();
    assert_eq!(out.out(), "hello");
    assert_eq!(
        std::fs::read_to_string(host.join("from-container")).unwrap(),
        "back\n"
    );
    // -v makes a missing host directory; --mount refuses it.
    let made = b.root.join("made/by/v");
    b.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/m", made.display()),
        "busybox",
        "true",
    ])
    .ok();
    assert!(made.is_dir());
    let missing = b.root.join("not-there");
    let r = b.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={},target=/m", missing.display()),
        "busybox",
        "true",
    ]);
    assert!(
        r.stderr.contains(&format!(
            "bind source path does not exist: {}",
            missing.display()
        )),
        "{r:?}"
    );
    assert!(!missing.exists());
    let ro = b.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{bind}:ro"),
        "busybox",
        "touch",
        "/h/x",
    ]);
    assert!(ro.stderr.contains("Read-only file system"), "{ro:?}");
    let dup = b.docker(&[
        "run", "--rm", "-v", &bind, "-v", "vol:/h", "busybox", "true",
    ]);
    assert!(dup.stderr.contains("Duplicate mount point: /h"), "{dup:?}");

    let tmpfs = b
        .docker(&[
            "run",
            "--rm",
            "--tmpfs",
            "/run/t:size=1m",
            "--mount",
            "type=tmpfs,target=/t2,tmpfs-size=2097152",
            "busybox",
            "sh",
            "-c",
            "df -k /run/t /t2 | tail -2 | awk '{print $1, $2}'",
        ])
        .ok();
    assert_eq!(tmpfs.out(), "tmpfs 1024\ntmpfs 2048");

    b.docker(&[
        "run",
        "-d",
        "--name",
        "donor",
        "-v",
        "/shared-data",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo donated > /shared-data/f; sleep 60",
    ])
    .ok();
    b.inspect_until("donor", "{{.State.Running}}", "true");
    let got = b
        .docker(&["run", "--rm", "--volumes-from", "donor:ro", "busybox", "sh", "-c", "until [ -s /shared-data/f ]; do sleep 0.1; done; cat /shared-data/f /h/from-host; touch /h/y"]);
    assert_eq!(got.stdout, "donated\nhello\n");
    assert!(got.stderr.contains("Read-only file system"), "{got:?}");
    b.docker(&["rm", "-f", "-v", "donor"]).ok();
    assert!(volumes(&b, &[]).is_empty());
}

#[test]
fn a_volume_path_that_is_a_symlink_out_copies_nothing_from_the_host() {
    let b = Berth::start();
    b.load_busybox();
    // On the host: a directory with a marker, which a symlink in the image
    // names with enough `..` to leave the container's root if followed
    // on the host.
    let secret = b.root.join("host-secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("marker"), "host only").unwrap();
    let link = format!("../../../../../../../..{}", secret.display());
    let cid = b
        .docker(&["create", "busybox", "ln", "-s", &link, "/evil"])
        .ok()
        .out()
        .to_string();
    b.docker(&["start", "-a", &cid]).ok();
    b.docker(&["commit", "--change", "VOLUME /evil", &cid, "evil"])
        .ok();
    b.docker(&["rm", &cid]).ok();
    let r = b.docker(&[
        "run",
        "--name",
        "victim",
        "evil",
        "sh",
        "-c",
        "ls -A /evil; cat /evil/marker",
    ]);
    assert!(!r.stdout.contains("host only"), "{r:?}");
    for v in volumes(&b, &[]) {
        let data = b.data_root().join("volumes").join(&v).join("_data");
        assert!(
            !data.join("marker").exists(),
            "the host's file was copied into {v}"
        );
    }
    // The host side is untouched.
    assert_eq!(
        std::fs::read_to_string(secret.join("marker")).unwrap(),
        "host only"
    );
    b.docker(&["rm", "-v", "victim"]).ok();
}

fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

#[test]
fn driver_options_mount_a_filesystem_while_a_container_uses_the_volume() {
    let b = Berth::start();
    b.load_busybox();
    let data = |name: &str| format!("{}/volumes/{name}/_data", b.data_root().display());

    // Docker's checks of the local driver's options.
    let bad = b.docker(&["volume", "create", "--opt", "bogus=1", "x1"]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("invalid option: \"bogus\""),
        "{}",
        bad.stderr
    );
    let bad = b.docker(&["volume", "create", "--opt", "type=tmpfs", "x2"]);
    assert!(
        bad.stderr.contains("missing required option: \"device\""),
        "{}",
        bad.stderr
    );
    assert!(
        volumes(&b, &[]).is_empty(),
        "a refused create made a volume"
    );

    // tmpfs with filesystem data (size, uid) and a flag (noexec).
    let t0 = now();
    b.docker(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=2m,uid=1234,noexec",
        "fast",
    ])
    .ok();
    assert_eq!(
        b.docker(&[
            "volume",
            "inspect",
            "-f",
            "{{.Options.type}} {{.Options.o}}",
            "fast"
        ])
        .ok()
        .out(),
        "tmpfs size=2m,uid=1234,noexec"
    );
    assert!(!b.mounts().contains(&data("fast")), "mounted before use");
    b.docker(&[
        "run",
        "-d",
        "--name",
        "user",
        "-v",
        "fast:/fast",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let seen = b
        .docker(&[
            "exec", "user", "sh", "-c",
            "stat -f -c %T /fast; stat -c %u /fast; df -k /fast | tail -1 | awk '{print $2}'; grep ' /fast ' /proc/mounts | grep -c noexec",
        ])
        .ok();
    assert_eq!(
        seen.out().lines().collect::<Vec<_>>(),
        ["tmpfs", "1234", "2048", "1"]
    );
    b.docker(&["exec", "user", "sh", "-c", "echo hi > /fast/f"])
        .ok();
    // A second user shares the mounted filesystem; the first one's exit
    // leaves it mounted for the second.
    b.docker(&[
        "run",
        "-d",
        "--name",
        "second",
        "-v",
        "fast:/fast",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    b.docker(&["rm", "-f", "user"]).ok();
    assert!(b.mounts().contains(&data("fast")), "unmounted while in use");
    assert_eq!(
        b.docker(&["exec", "second", "cat", "/fast/f"]).ok().out(),
        "hi"
    );
    b.docker(&["rm", "-f", "second"]).ok();
    assert!(
        !b.mounts().contains(&data("fast")),
        "still mounted after the last user: {:?}",
        b.mounts()
    );
    let actions = b
        .docker(&[
            "events",
            "--since",
            &t0,
            "--until",
            &now(),
            "--filter",
            "volume=fast",
            "--format",
            "{{.Action}}",
        ])
        .ok();
    assert_eq!(
        actions.out().lines().collect::<Vec<_>>(),
        ["create", "mount", "mount", "unmount", "unmount"]
    );

    // A bind of a host directory: written through, and `volume rm` leaves
    // the host directory's content alone.
    let host = b.data_root().parent().unwrap().join("bind-source");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("keep"), "precious").unwrap();
    let device = format!("device={}", host.display());
    b.docker(&[
        "volume",
        "create",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        &device,
        "hostdir",
    ])
    .ok();
    assert_eq!(
        b.docker(&[
            "run",
            "--rm",
            "-v",
            "hostdir:/h",
            "busybox",
            "sh",
            "-c",
            "cat /h/keep; echo new > /h/made",
        ])
        .ok()
        .out(),
        "precious"
    );
    assert_eq!(std::fs::read_to_string(host.join("made")).unwrap(), "new\n");
    b.docker(&["volume", "rm", "hostdir"]).ok();
    assert_eq!(
        std::fs::read_to_string(host.join("keep")).unwrap(),
        "precious"
    );

    // --mount volume-opt creates the volume with those options.
    assert_eq!(
        b.docker(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,src=viamount,dst=/m,volume-opt=type=tmpfs,volume-opt=device=tmpfs",
            "busybox",
            "stat",
            "-f",
            "-c",
            "%T",
            "/m",
        ])
        .ok()
        .out(),
        "tmpfs"
    );
    // A filesystem that cannot be mounted fails the start with the reason.
    b.docker(&[
        "volume",
        "create",
        "--opt",
        "type=nosuchfs",
        "--opt",
        "device=none",
        "broken",
    ])
    .ok();
    let r = b.docker(&["run", "--rm", "-v", "broken:/b", "busybox", "true"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("failed to mount local volume"),
        "{}",
        r.stderr
    );
    b.finish();
}
