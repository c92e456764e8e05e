//! Resource limits: Docker's HostConfig fields (Memory, NanoCpus,
//! PidsLimit, ...) checked as Docker checks them and turned into OCI
//! `linux.resources`, used by the spec at start and by `docker update`
//! (the same JSON goes to `runc update --resources`).

use std::path::Path;

use bollard_stubs::models::HostConfig;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPidsBuilder, LinuxResources};

use crate::error::{Error, Result};

/// Docker's floor for --memory.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The limits a HostConfig asks for, in OCI form; fields not asked for are
/// absent (runc leaves those alone on update).
pub fn oci_resources(hc: &HostConfig) -> Result<LinuxResources> {
    let positive = |v: Option<i64>| v.filter(|v| *v > 0);
    let mut memory = LinuxMemory::default();
    memory
        .set_limit(positive(hc.memory))
        .set_swap(hc.memory_swap.filter(|s| *s != 0))
        .set_reservation(positive(hc.memory_reservation));
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(positive(hc.cpu_shares).map(|s| s as u64));
    if let Some(n) = positive(hc.nano_cpus) {
        // --cpus is a CFS quota over Docker's 100 ms period.
        cpu.set_period(Some(100_000));
        cpu.set_quota(Some(n * 100_000 / 1_000_000_000));
    }
    if let Some(p) = positive(hc.cpu_period) {
        cpu.set_period(Some(p as u64));
    }
    if let Some(q) = positive(hc.cpu_quota) {
        cpu.set_quota(Some(q));
    }
    let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    cpu.set_cpus(given(&hc.cpuset_cpus));
    cpu.set_mems(given(&hc.cpuset_mems));
    let mut out = LinuxResources::default();
    if memory != LinuxMemory::default() {
        out.set_memory(Some(memory));
    }
    if cpu != LinuxCpu::default() {
        out.set_cpu(Some(cpu));
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        let pids = LinuxPidsBuilder::default()
            .limit(if p < 0 { -1 } else { p })
            .build()
            .map_err(Error::internal)?;
        out.set_pids(Some(pids));
    }
    if let Some(w) = hc.blkio_weight.filter(|w| *w > 0) {
        let mut block_io = LinuxBlockIo::default();
        block_io.set_weight(Some(w));
        out.set_block_io(Some(block_io));
    }
    Ok(out)
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
        let r = serde_json::to_value(oci_resources(&hc).unwrap()).unwrap();
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["pids"]["limit"], 20);
        assert_eq!(r["memory"]["limit"], 64 << 20);
        let none = serde_json::to_value(oci_resources(&HostConfig::default()).unwrap()).unwrap();
        assert_eq!(none, serde_json::json!({}));
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
