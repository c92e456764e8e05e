//! bollard, the Rust SDK, with its `buildkit` feature: `build_image` with
//! the BuildKit builder posts the context to `/build?version=2`, serves a
//! session of its own over `/session`, and reads progress as
//! `moby.buildkit.trace` messages. The same build is run against Debian's
//! dockerd, the oracle, and both are read the way bollard hands them to a
//! program.

use std::collections::HashMap;
use std::path::Path;

use berth_compat_tests::dockerd::Dockerd;
use berth_compat_tests::images::layer_tar;
use berth_compat_tests::Berth;
use bollard::models::BuildInfoAux;
use bollard::query_parameters::{BuildImageOptionsBuilder, BuilderVersion, ImageBuildOutput};
use bollard::{body_full, ClientVersion, Docker};
use futures_util::StreamExt;

/// What a program sees of one build.
#[derive(Debug, Default)]
struct Seen {
    /// Vertex names, in the order they first appeared.
    vertexes: Vec<String>,
    /// Log lines of the vertexes (RUN output).
    logs: String,
    image_id: Option<String>,
    streams: Vec<String>,
    error: Option<String>,
}

fn client(socket: &Path) -> Docker {
    // dockerd 20.10 speaks API 1.41 at most; Berth speaks it too.
    Docker::connect_with_unix(
        socket.to_str().unwrap(),
        120,
        &ClientVersion {
            major_version: 1,
            minor_version: 41,
        },
    )
    .unwrap()
}

async fn build(socket: &Path, tar: Vec<u8>, tag: &str, output: Option<ImageBuildOutput>) -> Seen {
    let docker = client(socket);
    let mut opts = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .version(BuilderVersion::BuilderBuildKit)
        .session(&format!("bollard-{}", std::process::id()))
        .nocache(true);
    if let Some(o) = output {
        opts = opts.outputs(o);
    }
    let mut stream = docker.build_image(opts.build(), None, Some(body_full(tar.into())));
    let mut seen = Seen::default();
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                seen.error = Some(e.to_string());
                break;
            }
        };
        if let Some(s) = info.stream {
            seen.streams.push(s);
        }
        match info.aux {
            Some(BuildInfoAux::BuildKit(status)) => {
                for v in status.vertexes {
                    if !seen.vertexes.contains(&v.name) {
                        seen.vertexes.push(v.name);
                    }
                }
                for l in status.logs {
                    seen.logs.push_str(&String::from_utf8_lossy(&l.msg));
                }
            }
            Some(BuildInfoAux::Default(id)) => seen.image_id = id.id,
            None => {}
        }
    }
    seen
}

/// The steps of a build as both engines name them. dockerd's BuildKit
/// also shows how it copies a remote context into place (`copy /context
/// /`), which Berth's builder does not do as a separate step; and on this
/// path dockerd 20.10 names a lone unnamed stage `stage-0`, which neither
/// its own `/grpc` path nor current BuildKit does (they show `[1/3] …`,
/// as Berth does on both paths).
///
/// The steps come sorted: BuildKit reports vertexes as its solver reaches
/// them, so the order in which dockerd first names them changes from run
/// to run (a cached `FROM` may first appear after the `RUN` that needs
/// it). Berth's own order is checked apart, by `numbered_in_order`.
fn steps(seen: &Seen) -> Vec<String> {
    let mut steps: Vec<String> = seen
        .vertexes
        .iter()
        .filter(|v| *v != "copy /context /")
        .map(|v| v.replacen("[stage-0 ", "[", 1))
        .collect();
    steps.sort();
    steps
}

/// Whether the numbered steps (`[n/total] …`) first appear in the order of
/// the Dockerfile, as on a build whose stage runs one step after another.
fn numbered_in_order(seen: &Seen) -> bool {
    let numbers: Vec<u32> = seen
        .vertexes
        .iter()
        .filter_map(|v| v.strip_prefix('[')?.split('/').next()?.parse().ok())
        .collect();
    numbers.windows(2).all(|w| w[0] < w[1])
}

const DOCKERFILE: &str = "FROM busybox\n\
RUN --mount=type=cache,target=/cache echo from-run > /cache/x && cp /cache/x /built && echo said-by-run\n\
COPY a.txt /a.txt\n";

#[test]
fn a_buildkit_build_through_bollard_reads_as_on_dockerd() {
    let dockerd = Dockerd::start().unwrap_or_else(|e| panic!("the oracle: {e}"));
    let berth = Berth::start();
    dockerd.load_busybox();
    berth.load_busybox();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tar = layer_tar(&[
        ("Dockerfile", DOCKERFILE.as_bytes()),
        ("a.txt", b"from-context\n"),
    ]);

    let theirs = rt.block_on(build(&dockerd.socket, tar.clone(), "bollard-bk", None));
    let ours = rt.block_on(build(&berth.socket, tar.clone(), "bollard-bk", None));
    assert_eq!(theirs.error, None, "{theirs:?}");
    assert_eq!(ours.error, None, "{ours:?}");
    assert_eq!(
        steps(&ours),
        steps(&theirs),
        "berth: {ours:?}\ndockerd: {theirs:?}"
    );
    assert!(numbered_in_order(&ours), "{ours:?}");
    assert!(ours.logs.contains("said-by-run"), "{ours:?}");
    assert_eq!(ours.streams, theirs.streams);
    assert_eq!(ours.streams, ["Successfully tagged bollard-bk:latest\n"]);

    // The image is in the store under its tag, with what the steps made.
    let id = ours.image_id.clone().expect("an image id");
    let inspect = berth
        .docker(&["image", "inspect", "-f", "{{.Id}}", "bollard-bk"])
        .ok();
    assert_eq!(inspect.stdout.trim(), id);
    let run = berth
        .docker(&["run", "--rm", "bollard-bk", "cat", "/built", "/a.txt"])
        .ok();
    assert_eq!(run.stdout, "from-run\nfrom-context\n");

    // A failing step: the error inside the stream, as bollard reports it.
    let bad = layer_tar(&[("Dockerfile", b"FROM busybox\nRUN exit 3\n")]);
    let theirs = rt.block_on(build(&dockerd.socket, bad.clone(), "bollard-bad", None));
    let ours = rt.block_on(build(&berth.socket, bad, "bollard-bad", None));
    let (Some(t), Some(o)) = (&theirs.error, &ours.error) else {
        panic!("both must fail: berth {ours:?}\ndockerd {theirs:?}");
    };
    for e in [t, o] {
        assert!(e.contains("exit code: 3"), "{e}");
    }
    assert_eq!(ours.image_id, None);

    dockerd.finish();
    berth.finish();
}

#[test]
fn bollard_takes_a_buildkit_result_as_a_tar_over_its_session() {
    let berth = Berth::start();
    berth.load_busybox();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dest = berth.root.join("out.tar");
    let tar = layer_tar(&[
        ("Dockerfile", DOCKERFILE.as_bytes()),
        ("a.txt", b"from-context\n"),
    ]);
    let seen = rt.block_on(build(
        &berth.socket,
        tar,
        "bollard-out",
        Some(ImageBuildOutput::Tar(dest.to_str().unwrap().to_string())),
    ));
    assert_eq!(seen.error, None, "{seen:?}");
    // Exported to the caller, not stored: no image id, no tag.
    assert_eq!(seen.image_id, None);
    assert_ne!(berth.docker(&["image", "inspect", "bollard-out"]).code, 0);
    let mut files = HashMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&dest).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut body = Vec::new();
        if e.header().entry_type().is_file() {
            std::io::Read::read_to_end(&mut e, &mut body).unwrap();
        }
        files.insert(name, String::from_utf8_lossy(&body).into_owned());
    }
    assert_eq!(
        files.get("a.txt").map(String::as_str),
        Some("from-context\n")
    );
    assert_eq!(files.get("built").map(String::as_str), Some("from-run\n"));
    assert!(files.contains_key("bin/busybox"), "{:?}", files.keys());
    berth.finish();
}
