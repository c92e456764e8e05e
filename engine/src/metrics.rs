//! Prometheus metrics on `--metrics-addr` (`GET /metrics`, in the text
//! format 0.0.4 that dockerd serves there): dockerd's engine metrics where
//! Berth has the same thing to count (container actions, container states,
//! events and their subscribers, builds, the host), and Berth's own: API
//! request durations by route, live shims, connections to berth-core,
//! takeovers, bytes pulled.
//!
//! Hand-written: one process-wide registry of a few counters and
//! histograms. The Rust client crates write OpenMetrics (prometheus-client)
//! or bring protobuf along (prometheus); neither is needed for this.
//!
//! Not here, unlike dockerd: health check counts (berth-core runs the
//! checks and tells berthd only when a status changes) and the logger's
//! failure counters (the shims write the logs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use crate::Engine;

/// Prometheus' default buckets, which dockerd's histograms use too.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// dockerd's reasons for a failed build (`builder_builds_failed_total`).
pub const BUILD_FAILURES: [&str; 8] = [
    "build_canceled",
    "build_target_not_reachable_error",
    "command_not_supported_error",
    "dockerfile_empty_error",
    "dockerfile_syntax_error",
    "error_processing_commands_error",
    "missing_onbuild_arguments_error",
    "unknown_instruction_error",
];

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

#[derive(Default)]
struct Histogram {
    /// Observations at or below each bucket's bound (not cumulative yet).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// `name_bucket`, `name_sum` and `name_count` lines; `labels` are
    /// already rendered (`action="start"`).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), float(sum));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// Histograms told apart by their labels (rendered, in order).
#[derive(Default)]
struct Family(Mutex<BTreeMap<String, Arc<Histogram>>>);

impl Family {
    fn observe(&self, labels: String, d: Duration) {
        let h = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(labels)
            .or_default()
            .clone();
        h.observe(d);
    }

    fn render(&self, out: &mut String, name: &str) {
        let all: Vec<(String, Arc<Histogram>)> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (labels, h) in all {
            h.render(out, name, &labels);
        }
    }
}

/// What berthd counts as it works.
#[derive(Default)]
pub struct Metrics {
    container_actions: Family,
    api_requests: Family,
    events: AtomicU64,
    builds_triggered: AtomicU64,
    builds_failed: [AtomicU64; BUILD_FAILURES.len()],
    core_connections: AtomicU64,
    takeovers: AtomicU64,
    pulled_bytes: AtomicU64,
}

impl Metrics {
    /// A container action (create, start, delete, commit, changes) done.
    pub fn container_action(&self, action: &str, took: Duration) {
        self.container_actions
            .observe(format!("action={}", quoted(action)), took);
    }

    /// An API request answered; `route` is the matched route's pattern
    /// (`/containers/{id}/json`), so ids do not make new series.
    pub fn api_request(&self, method: &str, route: &str, took: Duration) {
        self.api_requests.observe(
            format!("method={},route={}", quoted(method), quoted(route)),
            took,
        );
    }

    pub fn event(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    pub fn build_started(&self) {
        self.builds_triggered.fetch_add(1, Ordering::Relaxed);
    }

    /// A build failed, for one of [`BUILD_FAILURES`].
    pub fn build_failed(&self, reason: &str) {
        if let Some(i) = BUILD_FAILURES.iter().position(|r| *r == reason) {
            self.builds_failed[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// berthd connected to berth-core's event stream (more than once: the
    /// core restarted, or the connection was lost).
    pub fn core_connected(&self) {
        self.core_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// This berthd took the API socket over from a running one.
    pub fn took_over(&self) {
        self.takeovers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn pulled(&self, bytes: u64) {
        self.pulled_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The whole exposition: what was counted, and `now`, what is read at
    /// the time of the scrape.
    pub fn render(&self, now: &Scrape) -> String {
        let mut out = String::new();
        help(
            &mut out,
            "builder_builds_failed_total",
            "Number of failed image builds",
            "counter",
        );
        for (reason, n) in BUILD_FAILURES.iter().zip(&self.builds_failed) {
            let _ = writeln!(
                out,
                "builder_builds_failed_total{{reason={}}} {}",
                quoted(reason),
                n.load(Ordering::Relaxed)
            );
        }
        counter(
            &mut out,
            "builder_builds_triggered_total",
            "Number of triggered image builds",
            &self.builds_triggered,
        );
        help(
            &mut out,
            "engine_daemon_container_actions_seconds",
            "The number of seconds it takes to process each container action",
            "histogram",
        );
        self.container_actions
            .render(&mut out, "engine_daemon_container_actions_seconds");
        help(
            &mut out,
            "engine_daemon_container_states_containers",
            "The count of containers in various states",
            "gauge",
        );
        for (state, n) in [
            ("paused", now.paused),
            ("running", now.running),
            ("stopped", now.stopped),
        ] {
            let _ = writeln!(
                out,
                "engine_daemon_container_states_containers{{state={}}} {n}",
                quoted(state)
            );
        }
        gauge(
            &mut out,
            "engine_daemon_engine_cpus_cpus",
            "The number of cpus that the host system of the engine has",
            now.cpus as f64,
        );
        help(
            &mut out,
            "engine_daemon_engine_info",
            "The information related to the engine and the OS it is running on",
            "gauge",
        );
        let info: Vec<String> = now
            .info
            .iter()
            .map(|(k, v)| format!("{k}={}", quoted(v)))
            .collect();
        let _ = writeln!(out, "engine_daemon_engine_info{{{}}} 1", info.join(","));
        gauge(
            &mut out,
            "engine_daemon_engine_memory_bytes",
            "The number of bytes of memory that the host system of the engine has",
            now.memory_bytes as f64,
        );
        gauge(
            &mut out,
            "engine_daemon_events_subscribers_total",
            "The number of current subscribers to events",
            now.event_subscribers as f64,
        );
        counter(
            &mut out,
            "engine_daemon_events_total",
            "The number of events logged",
            &self.events,
        );
        help(
            &mut out,
            "berth_api_request_duration_seconds",
            "The number of seconds the engine took to answer an API request, by method and route",
            "histogram",
        );
        self.api_requests
            .render(&mut out, "berth_api_request_duration_seconds");
        counter(&mut out, "berth_core_connections_total", "Connections berthd made to berth-core's event stream (more than one: the core restarted or the connection was lost)", &self.core_connections);
        counter(
            &mut out,
            "berth_image_pull_bytes_total",
            "Bytes of image layers downloaded from registries",
            &self.pulled_bytes,
        );
        if let Some(shims) = now.shims {
            gauge(
                &mut out,
                "berth_shims",
                "Shims alive: one per running container or exec",
                shims as f64,
            );
        }
        counter(
            &mut out,
            "berth_takeovers_total",
            "Times this berthd took the API socket over from a running one",
            &self.takeovers,
        );
        out
    }
}

/// What a scrape reads at its time.
#[derive(Debug, Default)]
pub struct Scrape {
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
    pub cpus: usize,
    pub memory_bytes: i64,
    pub event_subscribers: usize,
    /// `engine_daemon_engine_info`'s labels, in order.
    pub info: Vec<(&'static str, String)>,
    /// None when berth-core does not answer.
    pub shims: Option<usize>,
}

impl Scrape {
    pub async fn read(engine: &Engine) -> Scrape {
        let (_, running, paused, stopped) =
            engine.containers.count_by_state().await.unwrap_or_default();
        let shims = tokio::time::timeout(Duration::from_secs(2), engine.core.tasks())
            .await
            .ok()
            .and_then(|r| r.ok())
            .map(|tasks| {
                tasks
                    .iter()
                    .filter(|t| t.status != berth_proto::TaskStatus::Stopped)
                    .count()
            });
        Scrape {
            running,
            paused,
            stopped,
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_bytes: crate::host_info::mem_total(),
            event_subscribers: engine.events.listeners(),
            info: vec![
                ("architecture", std::env::consts::ARCH.to_string()),
                (
                    "commit",
                    option_env!("BERTH_GIT_COMMIT")
                        .unwrap_or("unknown")
                        .to_string(),
                ),
                ("daemon_id", engine.id.clone()),
                ("graphdriver", "overlayfs".to_string()),
                ("kernel", crate::host_info::kernel_version()),
                ("os", crate::host_info::os_name()),
                ("os_type", "linux".to_string()),
                (
                    "os_version",
                    crate::host_info::os_release("VERSION_ID").unwrap_or_default(),
                ),
                ("version", env!("CARGO_PKG_VERSION").to_string()),
            ],
            shims,
        }
    }
}

fn help(out: &mut String, name: &str, text: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {text}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, text: &str, n: &AtomicU64) {
    help(out, name, text, "counter");
    let _ = writeln!(out, "{name} {}", n.load(Ordering::Relaxed));
}

fn gauge(out: &mut String, name: &str, text: &str, v: f64) {
    help(out, name, text, "gauge");
    let _ = writeln!(out, "{name} {}", float(v));
}

/// A sample value as Go's Prometheus client writes one (strconv's
/// shortest `g` form): `2`, `0.25`, and exponents from 1e6 and below 1e-4
/// (`2.5276194816e+10`).
fn float(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let exp = v.abs().log10().floor() as i32;
    if (-4..6).contains(&exp) {
        return format!("{v}");
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// A label value in double quotes, with `\`, `"` and newlines escaped.
fn quoted(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Binds `--metrics-addr` (before berthd opens its state: a bad address
/// stops it first). SO_REUSEPORT: during a takeover the new berthd binds
/// while the old one still serves; both answer until the old one exits.
pub fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context;
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("invalid metrics-addr {addr:?}: use ip:port"))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket
        .bind(addr)
        .and_then(|()| socket.listen(64))
        .with_context(|| format!("could not listen on metrics-addr {addr}"))
}

/// Serves `GET /metrics` on the listener until the process ends.
pub fn serve(listener: tokio::net::TcpListener, engine: Arc<Engine>) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(engine): axum::extract::State<Arc<Engine>>| async move {
                    let body = METRICS.render(&Scrape::read(&engine).await);
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        body,
                    )
                },
            ),
        )
        .with_state(engine);
    if let Ok(a) = listener.local_addr() {
        tracing::info!(address = %a, "metrics API listening");
    }
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics API stopped");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let m = Metrics::default();
        m.container_action("start", Duration::from_millis(3));
        m.container_action("start", Duration::from_millis(70));
        m.container_action("start", Duration::from_secs(20));
        let out = m.render(&Scrape::default());
        for line in [
            "engine_daemon_container_actions_seconds_bucket{action=\"start\",le=\"0.005\"} 1",
            "engine_daemon_container_actions_seconds_bucket{action=\"start\",le=\"0.05\"} 1",
            "engine_daemon_container_actions_seconds_bucket{action=\"start\",le=\"0.1\"} 2",
            "engine_daemon_container_actions_seconds_bucket{action=\"start\",le=\"10\"} 2",
            "engine_daemon_container_actions_seconds_bucket{action=\"start\",le=\"+Inf\"} 3",
            "engine_daemon_container_actions_seconds_sum{action=\"start\"} 20.073",
            "engine_daemon_container_actions_seconds_count{action=\"start\"} 3",
        ] {
            assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
        }
    }

    #[test]
    fn values_and_labels_are_written_as_go_writes_them() {
        assert_eq!(float(2.0), "2");
        assert_eq!(float(25276194816.0), "2.5276194816e+10");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(float(123456.0), "123456");
        assert_eq!(float(1e6), "1e+06");
        assert_eq!(float(0.00001), "1e-05");
        assert_eq!(quoted("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        let out = Metrics::default().render(&Scrape {
            running: 2,
            memory_bytes: 25276194816,
            info: vec![("os", "Debian \"12\"".into())],
            ..Default::default()
        });
        assert!(out.contains("engine_daemon_container_states_containers{state=\"running\"} 2\n"));
        assert!(out.contains("engine_daemon_engine_memory_bytes 2.5276194816e+10\n"));
        assert!(out.contains("engine_daemon_engine_info{os=\"Debian \\\"12\\\"\"} 1\n"));
        // No shim count without a core to ask.
        assert!(!out.contains("berth_shims"));
    }
}
