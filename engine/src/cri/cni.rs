//! Pod networks through CNI, as kubelets expect of a runtime: the node's
//! network configuration (the first loadable file of the configuration
//! directory, `/etc/cni/net.d`) names plugins, executables found in the
//! plugin directories, each called with its configuration on stdin, the
//! command and the pod's namespace in `CNI_*` variables, and answering a
//! JSON result (or error) on stdout.
//!
//! Hand-written: the protocol is one process call per plugin with a JSON
//! document either way, and the crates on crates.io serve the other side
//! (writing a plugin), not running one.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tracing::debug;

use crate::error::{Error, Result};

/// The plugin configuration that brings a pod's loopback up, as containerd
/// runs it before the node's network.
const LOOPBACK: &str =
    r#"{"cniVersion":"1.0.0","name":"cni-loopback","plugins":[{"type":"loopback"}]}"#;

/// Where the network configuration and the plugins are.
#[derive(Debug, Clone)]
pub struct Cni {
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
}

/// A network configuration list (a `.conflist`, or a single plugin's
/// `.conf` made into a list of one), kept with the pod so its teardown
/// uses what its setup did even if the node's file changed since.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkList {
    pub name: String,
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub plugins: Vec<Value>,
}

/// What a plugin call is about: one pod's namespace.
pub struct Attachment<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// `CNI_ARGS` (K8S_POD_NAME and friends).
    pub args: &'a [(&'a str, &'a str)],
    /// Values for the plugins' capabilities (`portMappings`, `dns`):
    /// each plugin gets in `runtimeConfig` those it declares.
    pub capabilities: &'a Map<String, Value>,
}

impl NetworkList {
    fn parse(text: &str) -> Result<NetworkList> {
        let doc: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut list = if doc.get("plugins").is_some() {
            serde_json::from_value::<NetworkList>(doc).map_err(|e| invalid(e.to_string()))?
        } else {
            // A single plugin's configuration: its name and version are
            // the list's.
            let field = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            NetworkList {
                name: field("name"),
                cni_version: field("cniVersion"),
                plugins: vec![doc],
            }
        };
        if list.name.is_empty() {
            return Err(invalid("no network name".into()));
        }
        if list.plugins.is_empty() {
            return Err(invalid("no plugins".into()));
        }
        if list.plugins.iter().any(|p| plugin_type(p).is_empty()) {
            return Err(invalid("a plugin without a type".into()));
        }
        if list.cni_version.is_empty() {
            list.cni_version = "0.4.0".into();
        }
        Ok(list)
    }

    pub fn loopback() -> NetworkList {
        NetworkList::parse(LOOPBACK).expect("the loopback configuration parses")
    }
}

fn invalid(why: String) -> Error {
    Error::InvalidArgument(format!("invalid CNI network configuration: {why}"))
}

fn plugin_type(plugin: &Value) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or("")
}

impl Cni {
    /// The node's pod network: the first file of the configuration
    /// directory, by name, that loads (`.conflist`, `.conf`, `.json`).
    /// `None` while there is none: the runtime is then not network-ready.
    pub fn network(&self) -> Option<NetworkList> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.conf_dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conflist" | "conf" | "json")
                )
            })
            .collect();
        files.sort();
        files.into_iter().find_map(|f| {
            let text = std::fs::read_to_string(&f).ok()?;
            NetworkList::parse(&text)
                .map_err(|e| debug!(file = %f.display(), error = %e, "skipping CNI configuration"))
                .ok()
        })
    }

    /// Attaches the namespace to every plugin of `list`, in order, each
    /// seeing the result before it; the last result.
    pub async fn add(&self, list: &NetworkList, at: &Attachment<'_>) -> Result<Value> {
        let mut previous: Option<Value> = None;
        for plugin in &list.plugins {
            let config = self.plugin_config(list, plugin, previous.as_ref(), at);
            previous = Some(self.call("ADD", plugin_type(plugin), &config, at).await?);
        }
        Ok(previous.unwrap_or(Value::Null))
    }

    /// Detaches, plugins in reverse order, given what `add` answered. A
    /// plugin's failure stops it (the caller retries at the next stop or
    /// remove, as kubelets do).
    pub async fn del(
        &self,
        list: &NetworkList,
        result: Option<&Value>,
        at: &Attachment<'_>,
    ) -> Result<()> {
        for plugin in list.plugins.iter().rev() {
            let config = self.plugin_config(list, plugin, result, at);
            self.call("DEL", plugin_type(plugin), &config, at).await?;
        }
        Ok(())
    }

    /// A plugin's stdin: its own configuration with the list's name and
    /// version, the previous result, and the capabilities it declares.
    fn plugin_config(
        &self,
        list: &NetworkList,
        plugin: &Value,
        previous: Option<&Value>,
        at: &Attachment<'_>,
    ) -> Value {
        let mut config = plugin.as_object().cloned().unwrap_or_default();
        config.insert("name".into(), json!(list.name));
        config.insert("cniVersion".into(), json!(list.cni_version));
        if let Some(previous) = previous.filter(|p| !p.is_null()) {
            config.insert("prevResult".into(), previous.clone());
        }
        let declared = plugin.get("capabilities").and_then(Value::as_object);
        let runtime: Map<String, Value> = at
            .capabilities
            .iter()
            .filter(|(k, _)| declared.and_then(|d| d.get(*k)) == Some(&Value::Bool(true)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !runtime.is_empty() {
            config.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        Value::Object(config)
    }

    fn find(&self, kind: &str) -> Result<PathBuf> {
        if kind.contains('/') || kind.starts_with('.') {
            return Err(invalid(format!("plugin type {kind:?}")));
        }
        self.bin_dirs
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::Internal(format!(
                    "failed to find plugin {kind:?} in path {:?}",
                    self.bin_dirs
                ))
            })
    }

    async fn call(
        &self,
        command: &str,
        kind: &str,
        config: &Value,
        at: &Attachment<'_>,
    ) -> Result<Value> {
        let program = self.find(kind)?;
        let args: Vec<String> = at.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let path = std::env::join_paths(&self.bin_dirs).map_err(Error::internal)?;
        let mut child = tokio::process::Command::new(&program)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", at.container_id)
            .env("CNI_NETNS", at.netns)
            .env("CNI_IFNAME", at.ifname)
            .env("CNI_ARGS", args.join(";"))
            .env("CNI_PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Internal(format!("running CNI plugin {kind:?}: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(config.to_string().as_bytes()).await?;
        drop(stdin);
        let out = child.wait_with_output().await?;
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if !out.status.success() {
            // The error document of the spec: code, msg, details.
            let msg = answer
                .get("msg")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
            return Err(Error::Internal(format!(
                "plugin type={kind:?} failed ({}): {msg}",
                command.to_lowercase()
            )));
        }
        debug!(kind, command, "CNI plugin answered");
        Ok(answer)
    }
}

/// The pod's addresses in a result, the one on `ifname` first (without
/// prefix length), as PodSandboxStatus gives them.
pub fn addresses(result: &Value, ifname: &str) -> Vec<String> {
    let interfaces = result.get("interfaces").and_then(Value::as_array);
    let on_ours = |ip: &Value| {
        let index = ip.get("interface").and_then(Value::as_u64);
        let name = index.and_then(|i| interfaces?.get(i as usize)?.get("name")?.as_str());
        name.is_none_or(|n| n == ifname)
    };
    let mut ips: Vec<String> = result
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|ip| on_ours(ip))
        .filter_map(|ip| ip.get("address")?.as_str())
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .collect();
    // Results of the 0.2.0 form name one address per family.
    for family in ["ip4", "ip6"] {
        if let Some(a) = result.get(family).and_then(|f| f.get("ip")?.as_str()) {
            ips.push(a.split('/').next().unwrap_or(a).to_string());
        }
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_plugin_file_is_a_list_of_one() {
        let list = NetworkList::parse(
            r#"{"cniVersion":"0.4.0","name":"pods","type":"bridge","bridge":"cni0"}"#,
        )
        .unwrap();
        assert_eq!(list.name, "pods");
        assert_eq!(list.cni_version, "0.4.0");
        assert_eq!(plugin_type(&list.plugins[0]), "bridge");
        assert!(NetworkList::parse(r#"{"name":"x","plugins":[]}"#).is_err());
        assert!(NetworkList::parse(r#"{"name":"x","plugins":[{"bridge":"b"}]}"#).is_err());
        assert!(NetworkList::parse("not json").is_err());
    }

    #[test]
    fn a_plugin_gets_the_lists_name_the_previous_result_and_its_capabilities_only() {
        let cni = Cni {
            conf_dir: "/nonexistent".into(),
            bin_dirs: vec![],
        };
        let list = NetworkList::parse(
            r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .unwrap();
        let caps: Map<String, Value> =
            serde_json::from_str(r#"{"portMappings":[{"hostPort":8080}],"dns":{}}"#).unwrap();
        let at = Attachment {
            container_id: "c",
            netns: Path::new("/x"),
            ifname: "eth0",
            args: &[],
            capabilities: &caps,
        };
        let first = cni.plugin_config(&list, &list.plugins[0], None, &at);
        assert_eq!(first["name"], "pods");
        assert_eq!(first["cniVersion"], "1.0.0");
        assert!(first.get("runtimeConfig").is_none());
        assert!(first.get("prevResult").is_none());
        let prev = json!({"ips":[{"address":"10.0.0.2/24"}]});
        let second = cni.plugin_config(&list, &list.plugins[1], Some(&prev), &at);
        assert_eq!(second["prevResult"], prev);
        assert_eq!(
            second["runtimeConfig"],
            json!({"portMappings":[{"hostPort":8080}]})
        );
    }

    #[test]
    fn addresses_are_the_pod_interfaces_without_prefix() {
        let result = json!({
            "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/ns"}],
            "ips": [
                {"address": "10.88.0.1/16", "interface": 0},
                {"address": "10.88.0.7/16", "interface": 2},
                {"address": "fd00::7/64", "interface": 2}
            ]
        });
        assert_eq!(addresses(&result, "eth0"), ["10.88.0.7", "fd00::7"]);
        assert_eq!(
            addresses(&json!({"ip4": {"ip": "10.1.0.3/24"}}), "eth0"),
            ["10.1.0.3"]
        );
    }

    #[test]
    fn plugin_types_stay_in_the_plugin_directories() {
        let cni = Cni {
            conf_dir: "/nonexistent".into(),
            bin_dirs: vec!["/usr/lib/cni".into()],
        };
        assert!(cni.find("../../bin/sh").is_err());
        assert!(cni.find("..").is_err());
    }
}
