//! `POST /containers/create`'s body, decoded as dockerd decodes it into
//! the typed [`CreateRequest`] the container service takes.

use bollard_stubs::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use serde_json::Value;

use crate::containers::CreateRequest;
use crate::error::{Error, Result};

/// Decodes a create body: its config, its host config (and whether the
/// body gave one at all), its NetworkingConfig and its container-level
/// MacAddress, from one parse.
///
/// As dockerd's wrapper (which embeds a HostConfig besides the inner
/// `HostConfig` key), host config fields at the top level of the body are
/// read too: they are the host config when the body has no `HostConfig`
/// (docker-py sends `Runtime` there), and otherwise give Memory,
/// MemorySwap and CpuShares where the inner one leaves them zero. The
/// top-level `Cpuset` names CpusetCpus when that is empty.
pub fn decode(body: &[u8]) -> Result<CreateRequest> {
    let raw: Value = crate::go_json::first_value(body)
        .map_err(|e| Error::InvalidArgument(format!("invalid JSON: {e}")))?;
    if raw.is_null() {
        return Err(Error::InvalidArgument(
            "Config cannot be empty in order to create a container".into(),
        ));
    }
    if !raw.is_object() {
        return Err(Error::InvalidArgument(
            "invalid JSON: the body must be an object".into(),
        ));
    }
    let parsed: ContainerCreateBody = crate::go_json::from_value(raw.clone())
        .map_err(|e| Error::InvalidArgument(format!("invalid container config: {e}")))?;
    let config: ContainerConfig = {
        let mut c = raw.clone();
        if let Some(m) = c.as_object_mut() {
            m.remove("HostConfig");
            m.remove("NetworkingConfig");
        }
        crate::go_json::from_value(c)
            .map_err(|e| Error::InvalidArgument(format!("invalid container config: {e}")))?
    };
    // Unknown keys (the Config's) are ignored, so this reads only what the
    // top level has of a HostConfig; a top level that does not decode as
    // one gives none, as it gives dockerd nothing it could use.
    // The container-level MacAddress: the typed config no longer has it
    // (API 1.44 moved it to the endpoints).
    #[derive(serde::Deserialize)]
    struct Legacy {
        #[serde(rename = "MacAddress", default)]
        mac_address: Option<String>,
    }
    let mac_address = crate::go_json::from_value::<Legacy>(raw.clone())
        .ok()
        .and_then(|l| l.mac_address)
        .filter(|m| !m.is_empty());
    let top: HostConfig = crate::go_json::from_value(raw.clone()).unwrap_or_default();
    let top_given =
        serde_json::to_value(&top).ok() != serde_json::to_value(HostConfig::default()).ok();
    let (mut host_config, given) = match parsed.host_config {
        Some(mut inner) => {
            let zero = |v: Option<i64>| v.unwrap_or(0) == 0;
            if zero(inner.memory) && !zero(top.memory) {
                inner.memory = top.memory;
            }
            if zero(inner.memory_swap) && !zero(top.memory_swap) {
                inner.memory_swap = top.memory_swap;
            }
            if zero(inner.cpu_shares) && !zero(top.cpu_shares) {
                inner.cpu_shares = top.cpu_shares;
            }
            (inner, true)
        }
        None if top_given => (top, true),
        None => (HostConfig::default(), false),
    };
    let cpuset = raw
        .get("Cpuset")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if let Some(cpuset) = cpuset.filter(|_| given) {
        if host_config.cpuset_cpus.as_deref().unwrap_or("").is_empty() {
            host_config.cpuset_cpus = Some(cpuset.to_string());
        }
    }
    // "KEY=value", or "KEY" alone (set from the client's environment
    // by the CLI); a variable without a name is nobody's.
    for e in config.env.iter().flatten() {
        if e.split('=').next().unwrap_or("").is_empty() || e.contains('\0') {
            return Err(Error::InvalidArgument(format!(
                "invalid environment variable: {e}"
            )));
        }
    }
    Ok(CreateRequest {
        config,
        host_config,
        host_config_given: given,
        networking: parsed.networking_config,
        mac_address,
    })
}
