//! `docker stats`: one JSON document per second (or one, with
//! `stream=false`) in Docker's StatsResponse shape, from the container's
//! cgroup. `precpu_stats` is the previous sample, from which clients
//! compute the CPU percentage.

use std::time::Duration;

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerBlkioStatEntry, ContainerBlkioStats, ContainerCpuStats, ContainerCpuUsage,
    ContainerMemoryStats, ContainerNetworkStats, ContainerPidsStats, ContainerStatsResponse,
    ContainerThrottlingData,
};
use tokio::sync::mpsc;

use crate::containers::observe::cgroup::{self, Cgroup};
use crate::containers::record::Container;
use crate::containers::Containers;
use crate::error::Result;

impl Containers {
    /// `GET /containers/{id}/stats`. Without `stream` and without
    /// `one_shot`, two samples a second apart are taken (as Docker does),
    /// so that the single answer carries a CPU delta.
    pub async fn stats(
        &self,
        name: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<mpsc::Receiver<ContainerStatsResponse>> {
        let c = self.lookup(name).await?;
        let (tx, rx) = mpsc::channel(2);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut prev = zero_cpu();
            let mut prev_read = crate::containers::record::ZERO_TIME.to_string();
            let mut c = c;
            if !stream && !one_shot && c.is_running() {
                if let Some(s) = sample(&c) {
                    prev = s.cpu_stats.unwrap_or_else(zero_cpu);
                    prev_read = s.read.unwrap_or_default();
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                // The latest state: a container may stop or restart meanwhile.
                if let Ok(Some(row)) = store.container(&c.id).await {
                    c = Container::from_row(row);
                }
                let mut doc = sample(&c).unwrap_or_else(|| empty(&c));
                doc.preread = Some(std::mem::take(&mut prev_read));
                doc.precpu_stats = Some(std::mem::replace(
                    &mut prev,
                    doc.cpu_stats.clone().unwrap_or_else(zero_cpu),
                ));
                prev_read = doc.read.clone().unwrap_or_default();
                if tx.send(doc).await.is_err() || !stream {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// The memory.stat keys dockerd reports on cgroup v1 (containerd's v1
/// metrics); newer kernels write more, which dockerd leaves out.
const V1_MEMORY_KEYS: [&str; 32] = [
    "active_anon",
    "active_file",
    "cache",
    "dirty",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
    "inactive_anon",
    "inactive_file",
    "mapped_file",
    "pgfault",
    "pgmajfault",
    "pgpgin",
    "pgpgout",
    "rss",
    "rss_huge",
    "total_active_anon",
    "total_active_file",
    "total_cache",
    "total_dirty",
    "total_inactive_anon",
    "total_inactive_file",
    "total_mapped_file",
    "total_pgfault",
    "total_pgmajfault",
    "total_pgpgin",
    "total_pgpgout",
    "total_rss",
    "total_rss_huge",
    "total_unevictable",
    "total_writeback",
    "unevictable",
    "writeback",
];

/// CPU figures of nothing: all zeros, as dockerd writes them.
fn zero_cpu() -> ContainerCpuStats {
    ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage {
            total_usage: Some(0),
            usage_in_kernelmode: Some(0),
            usage_in_usermode: Some(0),
            percpu_usage: None,
        }),
        throttling_data: Some(ContainerThrottlingData {
            periods: Some(0),
            throttled_periods: Some(0),
            throttled_time: Some(0),
        }),
        ..Default::default()
    }
}

/// What Docker answers for a container that does not run: zeros (the
/// blkio lists are null; `api::shape::STATS` writes them).
fn empty(c: &Container) -> ContainerStatsResponse {
    ContainerStatsResponse {
        name: Some(format!("/{}", c.name)),
        id: Some(c.id.clone()),
        read: Some(crate::containers::record::ZERO_TIME.into()),
        preread: Some(crate::containers::record::ZERO_TIME.into()),
        pids_stats: Some(Default::default()),
        blkio_stats: Some(Default::default()),
        num_procs: Some(0),
        storage_stats: Some(Default::default()),
        cpu_stats: Some(zero_cpu()),
        memory_stats: Some(Default::default()),
        ..Default::default()
    }
}

/// One sample of a running container; `None` when it does not run.
fn sample(c: &Container) -> Option<ContainerStatsResponse> {
    if !c.is_running() || c.state.pid == 0 {
        return None;
    }
    let cg = Cgroup::of_pid(c.state.pid)?;
    let cpu = cg.cpu();
    let mem = cg.memory();
    let (pids, pids_limit) = cg.pids_count();
    let online = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut stats = mem.stats;
    if cg.is_v1() {
        stats.retain(|k, _| V1_MEMORY_KEYS.contains(&k.as_str()));
    }
    let io: Vec<ContainerBlkioStatEntry> = cg
        .io_bytes()
        .into_iter()
        .map(|(major, minor, op, value)| ContainerBlkioStatEntry {
            major: Some(major),
            minor: Some(minor),
            op: Some(op.to_string()),
            value: Some(value),
        })
        .collect();
    // On cgroup v1 every blkio list is one (empty when the kernel has
    // nothing to say); on v2 only the first is filled, the others null.
    let v1_list = || cg.is_v1().then(Vec::new);
    let blkio = ContainerBlkioStats {
        io_service_bytes_recursive: (cg.is_v1() || !io.is_empty()).then_some(io),
        io_serviced_recursive: v1_list(),
        io_queue_recursive: v1_list(),
        io_service_time_recursive: v1_list(),
        io_wait_time_recursive: v1_list(),
        io_merged_recursive: v1_list(),
        io_time_recursive: v1_list(),
        sectors_recursive: v1_list(),
    };
    let nets = cgroup::network(c.state.pid);
    let networks = nets
        .into_iter()
        .map(|(name, n)| {
            let stats = ContainerNetworkStats {
                rx_bytes: Some(n[0]),
                rx_packets: Some(n[1]),
                rx_errors: Some(n[2]),
                rx_dropped: Some(n[3]),
                tx_bytes: Some(n[4]),
                tx_packets: Some(n[5]),
                tx_errors: Some(n[6]),
                tx_dropped: Some(n[7]),
                ..Default::default()
            };
            (name, stats)
        })
        .collect::<HashMap<_, _>>();
    Some(ContainerStatsResponse {
        read: Some(crate::util::now_rfc3339()),
        pids_stats: Some(ContainerPidsStats {
            current: Some(pids),
            limit: Some(pids_limit).filter(|l| *l > 0),
        }),
        blkio_stats: Some(blkio),
        cpu_stats: Some(ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(cpu.total),
                usage_in_kernelmode: Some(cpu.system),
                usage_in_usermode: Some(cpu.user),
                percpu_usage: cpu.per_cpu,
            }),
            system_cpu_usage: Some(cgroup::system_cpu_usage()),
            online_cpus: Some(online as u32),
            throttling_data: Some(ContainerThrottlingData {
                periods: Some(cpu.periods),
                throttled_periods: Some(cpu.throttled_periods),
                throttled_time: Some(cpu.throttled_time),
            }),
        }),
        memory_stats: Some(ContainerMemoryStats {
            usage: Some(mem.usage),
            max_usage: mem.max_usage,
            stats: Some(stats.into_iter().collect()),
            limit: Some(mem.limit),
            ..Default::default()
        }),
        networks: Some(networks).filter(|n| !n.is_empty()),
        ..empty(c)
    })
}
