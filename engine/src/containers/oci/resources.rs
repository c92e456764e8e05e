//! Resource limits: Docker's HostConfig fields (Memory, NanoCpus,
//! PidsLimit, ...) checked as Docker checks them and turned into OCI
//! `linux.resources`, used by the spec at start and by `docker update`
//! (the same JSON goes to `runc update --resources`).

use std::path::Path;

use bollard_stubs::models::HostConfig;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// Docker's floor for --memory.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The limits a HostConfig asks for, in OCI form; fields not asked for are
/// absent (runc leaves those alone on update).
pub fn oci_resources(hc: &HostConfig) -> Value {
    let mut memory = Map::new();
    if let Some(m) = hc.memory.filter(|m| *m > 0) {
        memory.insert("limit".into(), json!(m));
    }
    if let Some(s) = hc.memory_swap.filter(|s| *s != 0) {
        memory.insert("swap".into(), json!(s));
    }
    if let Some(r) = hc.memory_reservation.filter(|r| *r > 0) {
        memory.insert("reservation".into(), json!(r));
    }
    let mut cpu = Map::new();
    if let Some(s) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(n) = hc.nano_cpus.filter(|n| *n > 0) {
        // --cpus is a CFS quota over Docker's 100 ms period.
        cpu.insert("period".into(), json!(100_000));
        cpu.insert("quota".into(), json!(n * 100_000 / 1_000_000_000));
    }
    if let Some(p) = hc.cpu_period.filter(|p| *p > 0) {
        cpu.insert("period".into(), json!(p));
    }
    if let Some(q) = hc.cpu_quota.filter(|q| *q > 0) {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(c) = hc.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        cpu.insert("cpus".into(), json!(c));
    }
    if let Some(m) = hc.cpuset_mems.as_deref().filter(|m| !m.is_empty()) {
        cpu.insert("mems".into(), json!(m));
    }
    let mut out = Map::new();
    if !memory.is_empty() {
        out.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        out.insert(
            "pids".into(),
            json!({ "limit": if p < 0 { -1 } else { p } }),
        );
    }
    if let Some(w) = hc.blkio_weight.filter(|w| *w > 0) {
        out.insert("blockIO".into(), json!({ "weight": w }));
    }
    Value::Object(out)
}

/// Checks limits as Docker does and fills in its defaults (swap twice the
/// memory limit). Returns Docker's warnings for what the host cannot do;
/// such settings are dropped, not applied.
pub fn check(hc: &mut HostConfig) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let memory = hc.memory.unwrap_or(0);
    if memory < 0
        || hc.memory_reservation.unwrap_or(0) < 0
        || hc.cpu_shares.unwrap_or(0) < 0
        || hc.nano_cpus.unwrap_or(0) < 0
    {
        return Err(Error::InvalidArgument(
            "invalid resource limit: negative values are not allowed".into(),
        ));
    }
    if memory > 0 && memory < MIN_MEMORY {
        return Err(Error::InvalidArgument(
            "Minimum memory limit allowed is 6MB".into(),
        ));
    }
    let swap = hc.memory_swap.unwrap_or(0);
    if swap > 0 && memory == 0 {
        return Err(Error::InvalidArgument(
            "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
        ));
    }
    if swap > 0 && swap < memory {
        return Err(Error::InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        ));
    }
    if memory > 0 && hc.memory_reservation.unwrap_or(0) > memory {
        return Err(Error::InvalidArgument(
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        ));
    }
    if memory > 0 && swap == 0 {
        if swap_accounting() {
            hc.memory_swap = Some(memory * 2);
        } else {
            warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
            hc.memory_swap = Some(-1);
        }
    }
    if hc.nano_cpus.unwrap_or(0) > 0
        && (hc.cpu_quota.unwrap_or(0) > 0 || hc.cpu_period.unwrap_or(0) > 0)
    {
        return Err(Error::InvalidArgument(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
        ));
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    if let Some(n) = hc.nano_cpus.filter(|n| *n > 0) {
        if n < 10_000_000 || n > cpus * 1_000_000_000 {
            return Err(Error::InvalidArgument(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
    }
    if let Some(w) = hc.blkio_weight.filter(|w| *w > 0) {
        if !(10..=1000).contains(&w) {
            return Err(Error::InvalidArgument(
                "Range of blkio weight is from 10 to 1000".into(),
            ));
        }
        if !blkio_weight_supported() {
            warnings.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".into());
            hc.blkio_weight = Some(0);
        }
    }
    Ok(warnings)
}

fn swap_accounting() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || unified_has("memory.swap.max")
}

fn blkio_weight_supported() -> bool {
    Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists()
        || Path::new("/sys/fs/cgroup/blkio/blkio.bfq.weight").exists()
        || unified_has("io.weight")
}

/// On a pure cgroup v2 host: whether child cgroups get `file` (controllers
/// are enabled for children through the root's subtree_control).
fn unified_has(file: &str) -> bool {
    let controller = file.split('.').next().unwrap_or_default();
    std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control")
        .is_ok_and(|s| s.split_whitespace().any(|c| c == controller))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_become_a_quota_over_100ms() {
        let hc = HostConfig {
            nano_cpus: Some(1_500_000_000),
            pids_limit: Some(20),
            memory: Some(64 << 20),
            ..Default::default()
        };
        let r = oci_resources(&hc);
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["pids"]["limit"], 20);
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert!(oci_resources(&HostConfig::default())
            .as_object()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn docker_refuses_these_limits() {
        for hc in [
            HostConfig {
                memory: Some(1024),
                ..Default::default()
            },
            HostConfig {
                memory: Some(64 << 20),
                memory_swap: Some(32 << 20),
                ..Default::default()
            },
            HostConfig {
                nano_cpus: Some(1),
                ..Default::default()
            },
            HostConfig {
                nano_cpus: Some(1_000_000_000),
                cpu_quota: Some(50_000),
                ..Default::default()
            },
            HostConfig {
                memory: Some(-5),
                ..Default::default()
            },
        ] {
            assert!(check(&mut hc.clone()).is_err(), "{hc:?}");
        }
    }
}
