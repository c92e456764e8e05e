//! Documents shaped as dockerd writes them for the request's API version.
//!
//! dockerd serialises Go structs: a field without `omitempty` is always
//! there, as its zero value (`""`, `0`, `false`, `null`) when unset, and
//! clients index such fields without checking (`c["HostConfig"]["Dns"]`,
//! `{{.Config.WorkingDir}}`). bollard's models skip what is `None`, so each
//! document Berth answers with passes through [`Shape::apply`], which
//!
//! - fills every key dockerd always writes and the document lacks, from a
//!   template of dockerd's values for an unset field (taken from dockerd
//!   20.10's answers, the differential tests' oracle);
//! - removes fields that API versions before the one they came with do
//!   not have (`GwPriority` came with 1.48), and fields that later
//!   versions dropped are filled only below that version;
//! - turns empty lists and maps into `null` where dockerd writes `null`
//!   for them (a nil Go slice or map).
//!
//! Paths are `/`-separated keys; `*` is every element of a list or every
//! value of a map.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::ApiVersion;

pub struct Shape {
    /// Keys dockerd always writes, with their values when unset.
    zero: &'static str,
    /// (path, version it came with): removed below that version.
    since: &'static [(&'static str, ApiVersion)],
    /// (template, last version that has it): filled up to that version.
    until: &'static [(&'static str, ApiVersion)],
    /// Paths written as `null` when empty.
    null_if_empty: &'static [&'static str],
    /// Paths left out when empty (Go's `omitempty`).
    omit_if_empty: &'static [&'static str],
    /// `zero` and `until`'s templates, parsed at first use.
    parsed: OnceLock<Parsed>,
}

struct Parsed {
    zero: Value,
    until: Vec<(Value, ApiVersion)>,
}

impl Shape {
    fn parsed(&self) -> &Parsed {
        let parse =
            |t: &str| -> Value { serde_json::from_str(t).expect("a shape template is valid JSON") };
        self.parsed.get_or_init(|| Parsed {
            zero: parse(self.zero),
            until: self.until.iter().map(|(t, v)| (parse(t), *v)).collect(),
        })
    }

    pub fn apply(&self, doc: &mut Value, version: ApiVersion) {
        let parsed = self.parsed();
        fill(doc, &parsed.zero);
        for (zero, last) in &parsed.until {
            if version <= *last {
                fill(doc, zero);
            }
        }
        for (path, first) in self.since {
            if version < *first {
                remove_where(doc, &segments(path), &|_| true);
            }
        }
        for path in self.null_if_empty {
            nullify(doc, &segments(path));
        }
        for path in self.omit_if_empty {
            remove_where(doc, &segments(path), &is_empty);
        }
    }

    /// The answer: `value` serialised and shaped.
    pub fn json<T: serde::Serialize>(&self, value: &T, version: ApiVersion) -> Response {
        let mut doc = serde_json::to_value(value).unwrap_or(Value::Null);
        if doc.is_array() {
            self.apply_each(&mut doc, version);
        } else {
            self.apply(&mut doc, version);
        }
        json_response(&doc)
    }

    /// Applies the shape to every element of a list.
    pub fn apply_each(&self, docs: &mut Value, version: ApiVersion) {
        if let Value::Array(items) = docs {
            for d in items {
                self.apply(d, version);
            }
        }
    }
}

/// A JSON answer as dockerd writes it: Go's json.Encoder ends every
/// document with a newline.
pub fn json_response(doc: &Value) -> Response {
    Json(doc).into_response()
}

/// A JSON list of documents already serialised, written as `json_response`
/// writes a list of them.
pub fn json_array(docs: impl Iterator<Item = bytes::Bytes>) -> Response {
    let mut body = vec![b'['];
    for (i, doc) in docs.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&doc);
    }
    body.extend_from_slice(b"]\n");
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// An answer serialised as dockerd writes it (`json_response`): used in
/// place of `axum::Json`, which leaves out the final newline.
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = serde_json::to_vec(&self.0).unwrap_or_default();
        body.push(b'\n');
        (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    }
}

/// A list as dockerd writes a Go slice: `null` when it is empty (nil).
pub fn nil_if_empty<T: serde::Serialize>(items: &[T]) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        serde_json::to_value(items).unwrap_or(Value::Null)
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Adds what `zero` has and `doc` lacks, recursively; `"*"` in a template
/// object applies its value to every entry of the document's map.
fn fill(doc: &mut Value, zero: &Value) {
    let (Value::Object(d), Value::Object(z)) = (doc, zero) else {
        return;
    };
    for (k, zv) in z {
        if k == "*" {
            for v in d.values_mut() {
                fill(v, zv);
            }
            continue;
        }
        match d.get_mut(k) {
            None => {
                d.insert(k.clone(), strip_wildcards(zv));
            }
            Some(v) => fill(v, zv),
        }
    }
}

/// A template's value as a document value: `"*"` entries are patterns,
/// not keys, so a map filled in from a template starts empty.
fn strip_wildcards(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "*")
                .map(|(k, v)| (k.clone(), strip_wildcards(v)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

fn each<'a>(doc: &'a mut Value, seg: &str) -> Vec<&'a mut Value> {
    match (doc, seg) {
        (Value::Object(m), "*") => m.values_mut().collect(),
        (Value::Array(a), "*") => a.iter_mut().collect(),
        (Value::Object(m), k) => m.get_mut(k).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// Removes the key at `path` where `drop` holds for its value.
fn remove_where(doc: &mut Value, path: &[&str], drop: &dyn Fn(&Value) -> bool) {
    match path {
        [] => {}
        [last] => {
            if let Value::Object(m) = doc {
                if m.get(*last).is_some_and(drop) {
                    m.remove(*last);
                }
            }
        }
        [first, rest @ ..] => {
            for v in each(doc, first) {
                remove_where(v, rest, drop);
            }
        }
    }
}

/// Go's "empty" for omitempty: null, "", an empty list or map.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Writes `null` for an empty list or map at `path`.
fn nullify(doc: &mut Value, path: &[&str]) {
    match path {
        [] => {
            if (doc.is_array() || doc.is_object()) && is_empty(doc) {
                *doc = Value::Null;
            }
        }
        [first, rest @ ..] => {
            for v in each(doc, first) {
                nullify(v, rest);
            }
        }
    }
}

/// An endpoint in NetworkSettings.Networks (inspect and list).
macro_rules! endpoint_zero {
    () => {
        r#"{"IPAMConfig":null,"Links":null,"Aliases":null,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"MacAddress":"","DriverOpts":null}"#
    };
}

/// `Config` of a container or an image (Go's container.Config).
macro_rules! config_zero {
    () => {
        r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}"#
    };
}

/// `GET /containers/{id}/json`
pub static CONTAINER: Shape = Shape {
    zero: concat!(
        r#"{"Path":"","Args":[],"Image":"","ResolvConfPath":"","HostnamePath":"","HostsPath":"","LogPath":"","Name":"","RestartCount":0,"Driver":"overlay2","Platform":"linux","MountLabel":"","ProcessLabel":"","AppArmorProfile":"","ExecIDs":null,"Mounts":[],"#,
        r#""State":{"Status":"","Running":false,"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,"Pid":0,"ExitCode":0,"Error":"","StartedAt":"0001-01-01T00:00:00Z","FinishedAt":"0001-01-01T00:00:00Z"},"#,
        r#""HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"","PortBindings":{},"RestartPolicy":{"Name":"","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"CapAdd":null,"CapDrop":null,"CgroupnsMode":"host","Dns":null,"DnsOptions":null,"DnsSearch":null,"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"ConsoleSize":[0,0],"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":null,"BlkioDeviceReadBps":null,"BlkioDeviceWriteBps":null,"BlkioDeviceReadIOps":null,"BlkioDeviceWriteIOps":null,"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":null,"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":null,"OomKillDisable":false,"PidsLimit":null,"Ulimits":null,"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},"#,
        r#""GraphDriver":{"Data":null,"Name":"overlay2"},"Config":"#,
        config_zero!(),
        r#","NetworkSettings":{"Bridge":"","SandboxID":"","HairpinMode":false,"LinkLocalIPv6Address":"","LinkLocalIPv6PrefixLen":0,"Ports":{},"SandboxKey":"","SecondaryIPAddresses":null,"SecondaryIPv6Addresses":null,"EndpointID":"","Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","MacAddress":"","Networks":{"*":"#,
        endpoint_zero!(),
        r#"}}}"#
    ),
    since: &[
        ("NetworkSettings/Networks/*/DNSNames", ApiVersion(1, 44)),
        ("NetworkSettings/Networks/*/GwPriority", ApiVersion(1, 48)),
        ("HostConfig/Annotations", ApiVersion(1, 43)),
        ("ImageManifestDescriptor", ApiVersion(1, 48)),
    ],
    // The kernel memory limits went with API 1.42, the container-level
    // MacAddress with 1.44 (it is the endpoints' now).
    until: &[
        (
            r#"{"HostConfig":{"KernelMemory":0,"KernelMemoryTCP":0}}"#,
            ApiVersion(1, 41),
        ),
        (r#"{"Config":{"MacAddress":""}}"#, ApiVersion(1, 43)),
    ],
    null_if_empty: &["Config/Volumes", "HostConfig/PortBindings"],
    omit_if_empty: &["Config/ExposedPorts", "Config/MacAddress"],
    parsed: OnceLock::new(),
};

/// An entry of `GET /containers/json`.
pub static CONTAINER_SUMMARY: Shape = Shape {
    zero: concat!(
        r#"{"Ports":[],"Labels":{},"Mounts":[],"HostConfig":{"NetworkMode":""},"NetworkSettings":{"Networks":{"*":"#,
        endpoint_zero!(),
        r#"}}}"#
    ),
    since: &[
        ("NetworkSettings/Networks/*/DNSNames", ApiVersion(1, 44)),
        ("NetworkSettings/Networks/*/GwPriority", ApiVersion(1, 48)),
        ("ImageManifestDescriptor", ApiVersion(1, 48)),
    ],
    until: &[],
    null_if_empty: &[],
    omit_if_empty: &[],
    parsed: OnceLock::new(),
};

/// `GET /images/{name}/json`
pub static IMAGE: Shape = Shape {
    zero: concat!(
        r#"{"RepoTags":[],"RepoDigests":[],"Parent":"","Comment":"","DockerVersion":"","Author":"","Config":"#,
        config_zero!(),
        r#","RootFS":{"Type":"layers"},"Metadata":{"LastTagTime":"0001-01-01T00:00:00Z"},"GraphDriver":{"Data":null,"Name":"overlay2"}}"#
    ),
    since: &[
        ("Descriptor", ApiVersion(1, 48)),
        ("Manifests", ApiVersion(1, 48)),
    ],
    // VirtualSize left with 1.44, Container and ContainerConfig with 1.45.
    until: &[
        (r#"{"VirtualSize":0}"#, ApiVersion(1, 43)),
        (
            concat!(r#"{"Container":"","ContainerConfig":"#, config_zero!(), "}"),
            ApiVersion(1, 44),
        ),
    ],
    null_if_empty: &["ContainerConfig/Volumes"],
    omit_if_empty: &[],
    parsed: OnceLock::new(),
};

/// An entry of `GET /images/json`.
pub static IMAGE_SUMMARY: Shape = Shape {
    zero: r#"{"Containers":-1,"Labels":null,"ParentId":"","RepoDigests":null,"RepoTags":null,"SharedSize":-1}"#,
    since: &[
        ("Descriptor", ApiVersion(1, 48)),
        ("Manifests", ApiVersion(1, 47)),
    ],
    until: &[(r#"{"VirtualSize":0}"#, ApiVersion(1, 43))],
    null_if_empty: &["Labels", "RepoDigests"],
    omit_if_empty: &[],
    parsed: OnceLock::new(),
};

/// `GET /info`
pub static INFO: Shape = Shape {
    zero: r#"{"Swarm":{"RemoteManagers":null},"GenericResources":null,"HttpProxy":"","HttpsProxy":"","NoProxy":"","Isolation":"","OSVersion":"","InitCommit":{"ID":"","Expected":""},"RuncCommit":{"ID":"","Expected":""},"ContainerdCommit":{"ID":"","Expected":""},"BridgeNfIptables":false,"BridgeNfIp6tables":false,"DefaultAddressPools":null,"Plugins":{"Authorization":null},"RegistryConfig":{"AllowNondistributableArtifactsCIDRs":[],"AllowNondistributableArtifactsHostnames":[]},"Warnings":null}"#,
    since: &[],
    until: &[(
        r#"{"KernelMemory":false,"KernelMemoryTCP":false}"#,
        ApiVersion(1, 41),
    )],
    null_if_empty: &["Warnings"],
    omit_if_empty: &[],
    parsed: OnceLock::new(),
};

/// `GET /networks/{id}` and the entries of `GET /networks`.
pub static NETWORK: Shape = Shape {
    zero: r#"{"IPAM":{"Options":null},"Options":{},"Labels":{},"Containers":{}}"#,
    since: &[("EnableIPv4", ApiVersion(1, 47))],
    until: &[],
    null_if_empty: &["IPAM/Options"],
    omit_if_empty: &[],
    parsed: OnceLock::new(),
};

/// Each document of `GET /containers/{id}/stats`: the blkio lists the
/// kernel gave nothing for are `null` (cgroup v2, a stopped container).
pub static STATS: Shape = Shape {
    zero: r#"{"blkio_stats":{"io_service_bytes_recursive":null,"io_serviced_recursive":null,"io_queue_recursive":null,"io_service_time_recursive":null,"io_wait_time_recursive":null,"io_merged_recursive":null,"io_time_recursive":null,"sectors_recursive":null}}"#,
    since: &[],
    until: &[],
    null_if_empty: &[],
    omit_if_empty: &[],
    parsed: OnceLock::new(),
};

/// `GET /exec/{id}/json`: the exit code is `null` until the process ends.
pub static EXEC: Shape = Shape {
    zero: r#"{"ExitCode":null}"#,
    since: &[],
    until: &[],
    null_if_empty: &[],
    omit_if_empty: &[],
    parsed: OnceLock::new(),
};

/// `GET /volumes/{name}` and the entries of `GET /volumes`.
pub static VOLUME: Shape = Shape {
    zero: r#"{"Labels":null,"Options":null,"Scope":"local"}"#,
    since: &[],
    until: &[],
    null_if_empty: &["Labels", "Options"],
    omit_if_empty: &[],
    parsed: OnceLock::new(),
};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    static T: Shape = Shape {
        zero: r#"{"A":"","M":{"*":{"Z":0}},"L":null}"#,
        since: &[("M/*/New", ApiVersion(1, 48))],
        until: &[(r#"{"Old":0}"#, ApiVersion(1, 43))],
        null_if_empty: &["E"],
        omit_if_empty: &["O"],
        parsed: OnceLock::new(),
    };

    #[test]
    fn fills_strips_and_nulls_by_version() {
        let mut d = json!({"A": "set", "M": {"x": {"New": 1}}, "E": [], "O": {}});
        T.apply(&mut d, ApiVersion(1, 41));
        assert_eq!(
            d,
            json!({"A": "set", "M": {"x": {"Z": 0}}, "L": null, "E": null, "Old": 0})
        );
        // Lists and maps with something in them stay as they are.
        let mut d = json!({"M": {"x": {"New": 1}}, "E": [1], "O": {"k": 1}});
        T.apply(&mut d, ApiVersion(1, 50));
        assert_eq!(
            d,
            json!({"A": "", "M": {"x": {"Z": 0, "New": 1}}, "L": null, "E": [1], "O": {"k": 1}})
        );
    }

    #[test]
    fn a_map_filled_from_a_template_starts_empty() {
        let mut d = json!({});
        T.apply(&mut d, ApiVersion(1, 50));
        assert_eq!(d["M"], json!({}));
    }

    #[test]
    fn every_template_is_json() {
        for s in [
            &CONTAINER,
            &CONTAINER_SUMMARY,
            &IMAGE,
            &IMAGE_SUMMARY,
            &INFO,
            &NETWORK,
            &VOLUME,
            &EXEC,
            &STATS,
        ] {
            let mut d = json!({});
            s.apply(&mut d, ApiVersion(1, 41));
            s.apply(&mut d, ApiVersion(1, 50));
        }
    }
}
