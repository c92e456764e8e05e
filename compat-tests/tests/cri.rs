//! The Kubernetes CRI on berthd's `cri.sock` (beside the API socket),
//! driven by crictl, with Debian's containerd and its CRI plugin asked the
//! same things as the oracle. Images are Berth's: what docker has, the CRI
//! lists, and what the CRI pulls or removes, docker sees.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_compat_tests::cni::PodNetwork;
use berth_compat_tests::containerd::{crictl, Containerd};
use berth_compat_tests::registry::Registry;
use berth_compat_tests::{Berth, Run};
use serde_json::Value;

fn cri_socket(b: &Berth) -> PathBuf {
    b.socket.with_file_name("cri.sock")
}

fn json(run: Run) -> Value {
    let run = run.ok();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// `crictl version`'s lines as field → value.
fn fields(run: Run) -> BTreeMap<String, String> {
    run.ok()
        .stdout
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The runtime conditions of `crictl info`: type → (status, reason).
fn conditions(info: &Value) -> BTreeMap<String, (bool, String)> {
    info["status"]["conditions"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap_or_default().to_string(),
                (
                    c["status"].as_bool().unwrap_or_default(),
                    c["reason"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect()
}

#[test]
fn crictl_finds_a_runtime_that_answers_as_containerd_does() {
    // Both without a CNI configuration (an empty directory each).
    let empty = PodNetwork::new("none");
    let b = Berth::start_with(&["--cni-conf-dir", empty.dir.to_str().unwrap()]);
    let ctd = Containerd::start(&[]);
    let ours = fields(crictl(&cri_socket(&b), &["version"]));
    let theirs = fields(ctd.crictl(&["version"]));
    assert_eq!(ours["Version"], theirs["Version"]);
    assert_eq!(ours["RuntimeApiVersion"], theirs["RuntimeApiVersion"]);
    assert_eq!(ours["RuntimeName"], "berth");
    assert_eq!(theirs["RuntimeName"], "containerd");
    assert!(!ours["RuntimeVersion"].is_empty());

    // The runtime is ready; pod networking is not, in the same words a
    // containerd without CNI configuration uses (a kubelet schedules no
    // pod on such a node).
    let ours = conditions(&json(crictl(&cri_socket(&b), &["info"])));
    let theirs = conditions(&json(ctd.crictl(&["info"])));
    assert_eq!(ours, theirs);
    assert_eq!(ours["RuntimeReady"], (true, String::new()));
    assert!(!ours["NetworkReady"].0);

    // What is not served yet says so (not an empty answer).
    let containers = crictl(&cri_socket(&b), &["ps"]);
    assert_ne!(containers.code, 0);
    assert!(
        containers.stderr.contains("Unimplemented"),
        "{containers:?}"
    );
    b.finish();
}

#[test]
fn images_pulled_through_the_cri_are_dockers_and_the_other_way_round() {
    let b = Berth::start();
    b.load_busybox();
    let reg = Registry::start();
    let name = format!("{}/cri/busybox:1", reg.addr);
    b.docker(&["tag", "busybox", &name]).ok();
    b.docker(&["push", &name]).ok();
    b.docker(&["rmi", &name]).ok();
    let sock = cri_socket(&b);

    // What docker has, the CRI lists, by its full name and id.
    let id = b
        .docker(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .ok()
        .out()
        .to_string();
    let listed = json(crictl(&sock, &["images", "-o", "json"]));
    let busybox: Vec<&Value> = listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["repoTags"][0] == "docker.io/library/busybox:latest")
        .collect();
    assert_eq!(busybox.len(), 1, "{listed}");
    assert_eq!(busybox[0]["id"], id.as_str());

    // A pull through the CRI, here and on containerd: the same answer,
    // the same id, names and digests.
    let ctd = Containerd::start(&[&reg.addr]);
    let ours = crictl(&sock, &["pull", &name]).ok();
    let theirs = ctd.crictl(&["pull", &name]).ok();
    assert_eq!(ours.stdout, theirs.stdout);
    assert_eq!(ours.stdout.trim(), format!("Image is up to date for {id}"));
    let ours = json(crictl(&sock, &["inspecti", &name]));
    let theirs = json(ctd.crictl(&["inspecti", &name]));
    for key in ["id", "repoDigests"] {
        assert_eq!(ours["status"][key], theirs["status"][key], "{key}");
    }
    // One store: the image docker loaded as busybox has both names here.
    assert_eq!(theirs["status"]["repoTags"], serde_json::json!([name]));
    assert_eq!(
        ours["status"]["repoTags"],
        serde_json::json!([name, "docker.io/library/busybox:latest"])
    );
    assert_eq!(
        ours["status"]["repoDigests"][0]
            .as_str()
            .unwrap()
            .split_once('@')
            .unwrap()
            .0,
        format!("{}/cri/busybox", reg.addr)
    );
    // docker sees what the CRI pulled.
    assert_eq!(
        b.docker(&["image", "inspect", "-f", "{{.Id}}", &name])
            .ok()
            .out(),
        id
    );

    // Removed through the CRI: the image under all its names, as the CRI
    // removes images (crictl warns when a name has siblings), and so gone
    // for docker too. A second removal is refused by crictl alike on both
    // (it asks ImageStatus first).
    let removed = crictl(&sock, &["rmi", &name]).ok();
    assert!(removed.stderr.contains("has multiple tags"), "{removed:?}");
    ctd.crictl(&["rmi", &name]).ok();
    assert_ne!(b.docker(&["image", "inspect", &name]).code, 0);
    assert_ne!(b.docker(&["image", "inspect", "busybox"]).code, 0);
    let ours = crictl(&sock, &["rmi", &name]);
    let theirs = ctd.crictl(&["rmi", &name]);
    assert_ne!(ours.code, 0);
    assert_ne!(theirs.code, 0);
    assert!(ours.stderr.contains("no such image"), "{ours:?}");
    assert!(theirs.stderr.contains("no such image"), "{theirs:?}");

    // What the registry lacks fails on both, and nothing is listed.
    let missing = format!("{}/cri/nothing:1", reg.addr);
    let ours = crictl(&sock, &["pull", &missing]);
    let theirs = ctd.crictl(&["pull", &missing]);
    assert_ne!(ours.code, 0, "{ours:?}");
    assert_ne!(theirs.code, 0, "{theirs:?}");
    assert!(ours.stderr.contains("not found"), "{ours:?}");
    let listed = json(crictl(&sock, &["images", "-o", "json"]));
    assert!(!listed.to_string().contains("cri/nothing"), "{listed}");
    drop(ctd);
    b.finish();
}

#[test]
fn a_pull_through_the_cri_uses_the_credentials_it_is_given() {
    let b = Berth::start();
    b.load_busybox();
    let reg = Registry::with_htpasswd("kube", "s3cret");
    let name = format!("{}/cri/private:1", reg.addr);
    b.docker_stdin(
        &["login", "-u", "kube", "--password-stdin", &reg.addr],
        b"s3cret",
    )
    .ok();
    b.docker(&["tag", "busybox", &name]).ok();
    b.docker(&["push", &name]).ok();
    b.docker(&["rmi", &name]).ok();
    b.docker(&["logout", &reg.addr]).ok();
    let sock = cri_socket(&b);

    // The kubelet's pull secret is the request's auth; berthd's own
    // credentials play no part.
    let anonymous = crictl(&sock, &["pull", &name]);
    assert_ne!(anonymous.code, 0, "{anonymous:?}");
    let wrong = crictl(&sock, &["pull", "--creds", "kube:nope", &name]);
    assert_ne!(wrong.code, 0, "{wrong:?}");
    crictl(&sock, &["pull", "--creds", "kube:s3cret", &name]).ok();
    let id = b
        .docker(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .ok()
        .out()
        .to_string();
    assert_eq!(
        b.docker(&["image", "inspect", "-f", "{{.Id}}", &name])
            .ok()
            .out(),
        id
    );
    b.finish();
}

#[test]
fn an_upgraded_berthd_serves_the_cri_on_the_socket_it_was_handed() {
    use std::os::unix::fs::MetadataExt;
    let mut b = Berth::start();
    b.load_busybox();
    let sock = cri_socket(&b);
    let before = std::fs::metadata(&sock).unwrap().ino();
    assert_eq!(fields(crictl(&sock, &["version"]))["RuntimeName"], "berth");
    let old = b.berthd_pid();
    let run = b.upgrade(&berth_compat_tests::bin_dir(), &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        berth_compat_tests::wait_exit(old as i32),
        "the old berthd still runs"
    );
    // The same kernel socket (handed over, not bound again: a kubelet's
    // connection attempt meanwhile is never refused), served by the new
    // berthd.
    assert_eq!(std::fs::metadata(&sock).unwrap().ino(), before);
    let listed = json(crictl(&sock, &["images", "-o", "json"]));
    assert!(
        listed
            .to_string()
            .contains("docker.io/library/busybox:latest"),
        "{listed}"
    );
    b.finish();
}
