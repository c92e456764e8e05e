//! `docker stats`: one JSON document per second (or one, with
//! `stream=false`) in Docker's StatsResponse shape, from the container's
//! cgroup. `precpu_stats` is the previous sample, from which clients
//! compute the CPU percentage.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::cgroup::{self, Cgroup};
use super::record::Container;
use super::Containers;
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
    ) -> Result<mpsc::Receiver<Bytes>> {
        let c = self.lookup(name).await?;
        let (tx, rx) = mpsc::channel(2);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut prev = json!({ "cpu_usage": { "total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0 }, "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 } });
            let mut prev_read = super::record::ZERO_TIME.to_string();
            let mut c = c;
            if !stream && !one_shot && c.is_running() {
                let (cpu, read) = sample(&c)
                    .map(|s| (s["cpu_stats"].clone(), s["read"].clone()))
                    .unwrap_or_default();
                prev = cpu;
                prev_read = read.as_str().unwrap_or_default().to_string();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                // The latest state: a container may stop or restart meanwhile.
                if let Ok(Some(row)) = store.container(&c.id).await {
                    if let Ok(now) = Container::from_row(row) {
                        c = now;
                    }
                }
                let mut doc = sample(&c).unwrap_or_else(|| empty(&c));
                doc["preread"] = json!(prev_read);
                doc["precpu_stats"] = prev.clone();
                prev = doc["cpu_stats"].clone();
                prev_read = doc["read"].as_str().unwrap_or_default().to_string();
                let line = Bytes::from(doc.to_string() + "\n");
                if tx.send(line).await.is_err() || !stream {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// The blkio lists dockerd always writes: on cgroup v1 each is a list
/// (empty when the kernel has nothing to say); on v2 only the first is
/// filled and the others are null, as they are for a stopped container.
const BLKIO_KEYS: [&str; 8] = [
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
];

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

/// What Docker answers for a container that does not run: zeros.
fn empty(c: &Container) -> Value {
    json!({
        "name": format!("/{}", c.name),
        "id": c.id,
        "read": super::record::ZERO_TIME,
        "preread": super::record::ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": BLKIO_KEYS.iter().map(|k| (k.to_string(), Value::Null)).collect::<serde_json::Map<_, _>>(),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": { "cpu_usage": { "total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0 }, "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 } },
        "memory_stats": {},
    })
}

/// One sample of a running container; `None` when it does not run.
fn sample(c: &Container) -> Option<Value> {
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
    let mut cpu_usage = json!({ "total_usage": cpu.total, "usage_in_kernelmode": cpu.system, "usage_in_usermode": cpu.user });
    if let Some(per) = cpu.per_cpu {
        cpu_usage["percpu_usage"] = json!(per);
    }
    let mut stats = mem.stats;
    if cg.is_v1() {
        stats.retain(|k, _| V1_MEMORY_KEYS.contains(&k.as_str()));
    }
    let mut memory = json!({ "usage": mem.usage, "stats": stats, "limit": mem.limit });
    if let Some(max) = mem.max_usage {
        memory["max_usage"] = json!(max);
    }
    let mut pids_stats = json!({ "current": pids });
    if pids_limit > 0 {
        pids_stats["limit"] = json!(pids_limit);
    }
    let io: Vec<Value> = cg.io_bytes().into_iter().map(|(major, minor, op, value)| json!({ "major": major, "minor": minor, "op": op, "value": value })).collect();
    let mut doc = empty(c);
    doc["read"] = json!(crate::util::now_rfc3339());
    doc["pids_stats"] = pids_stats;
    if cg.is_v1() {
        for k in BLKIO_KEYS {
            doc["blkio_stats"][k] = json!([]);
        }
    }
    if cg.is_v1() || !io.is_empty() {
        doc["blkio_stats"]["io_service_bytes_recursive"] = json!(io);
    }
    doc["cpu_stats"] = json!({
        "cpu_usage": cpu_usage,
        "system_cpu_usage": cgroup::system_cpu_usage(),
        "online_cpus": online,
        "throttling_data": { "periods": cpu.periods, "throttled_periods": cpu.throttled_periods, "throttled_time": cpu.throttled_time },
    });
    doc["memory_stats"] = memory;
    let nets = cgroup::network(c.state.pid);
    if !nets.is_empty() {
        let mut networks = serde_json::Map::new();
        for (name, n) in nets {
            networks.insert(
                name,
                json!({ "rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2], "rx_dropped": n[3], "tx_bytes": n[4], "tx_packets": n[5], "tx_errors": n[6], "tx_dropped": n[7] }),
            );
        }
        doc["networks"] = Value::Object(networks);
    }
    Some(doc)
}
