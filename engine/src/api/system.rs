//! `/_ping`, `/version`, `/info`.

use std::collections::HashMap;

use super::shape::Json;
use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bollard_stubs::models::{
    SystemInfo, SystemVersion, SystemVersionComponents, SystemVersionPlatform,
};
use serde_json::json;

use super::query::Query;
use super::{ApiVersion, State, MAX_API_VERSION, MIN_API_VERSION};
use crate::error::Error;
use crate::error::Result;
use crate::events::Event;
use crate::filters::events::EventFilter;

fn ping_headers(engine: &crate::Engine) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    // BuildKit's API is served (`/grpc`, `/session`): clients prefer it,
    // unless daemon.json's `features` say `"buildkit": false` (dockerd
    // then offers its legacy builder, version 1).
    let builder = match engine.settings().features.get("buildkit") {
        Some(false) => "1",
        _ => "2",
    };
    h.insert("Builder-Version", HeaderValue::from_static(builder));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    h
}

pub async fn ping(AxState(engine): AxState<State>) -> impl IntoResponse {
    (ping_headers(&engine), "OK")
}

pub async fn ping_head(AxState(engine): AxState<State>) -> impl IntoResponse {
    let mut h = ping_headers(&engine);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    (h, "")
}

pub async fn version() -> Json<SystemVersion> {
    let v = env!("CARGO_PKG_VERSION").to_string();
    let arch = crate::images::go_arch().to_string();
    Json(SystemVersion {
        platform: Some(SystemVersionPlatform {
            name: "Berth Engine".into(),
        }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".into(),
            version: v.clone(),
            details: Some(HashMap::from([
                ("ApiVersion".to_string(), MAX_API_VERSION.to_string()),
                ("MinAPIVersion".to_string(), MIN_API_VERSION.to_string()),
                ("Os".to_string(), "linux".to_string()),
                ("Arch".to_string(), arch.clone()),
            ])),
        }]),
        version: Some(v),
        api_version: Some(MAX_API_VERSION.to_string()),
        min_api_version: Some(MIN_API_VERSION.to_string()),
        git_commit: Some(
            option_env!("BERTH_GIT_COMMIT")
                .unwrap_or("unknown")
                .to_string(),
        ),
        go_version: Some(String::new()),
        os: Some("linux".into()),
        arch: Some(arch),
        kernel_version: Some(crate::host_info::kernel_version()),
        // dockerd writes Experimental only when it is true (omitempty).
        experimental: None,
        build_time: Some(String::new()),
    })
}

fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

pub async fn info(
    AxState(engine): AxState<State>,
    Extension(version): Extension<super::ApiVersion>,
) -> Result<Response> {
    let (total, running, paused, stopped) = engine.containers.count_by_state().await?;
    let images = engine.images.count().await?;
    // Ask the core afresh (it may have been restarted with other runtimes),
    // without starting one: that is the monitor's job, and info must not wait.
    let live = engine.core.handshake().await;
    let reachable = live.is_ok();
    let core = live.ok().or_else(|| engine.cached_core_info());
    let configured = engine.settings().default_runtime.clone();
    let default_runtime = if configured.is_empty() {
        core.as_ref()
            .map(|h| h.default_runtime.clone())
            .unwrap_or_default()
    } else {
        configured
    };
    let mut runtimes = HashMap::new();
    for rt in core
        .as_ref()
        .map(|h| h.runtimes.clone())
        .unwrap_or_default()
    {
        runtimes.insert(
            rt.name.clone(),
            bollard_stubs::models::Runtime {
                path: Some(rt.path.clone()),
                ..Default::default()
            },
        );
    }
    for (name, rt) in &engine.settings().runtimes {
        runtimes.insert(
            name.clone(),
            bollard_stubs::models::Runtime {
                path: Some(rt.path.clone()),
                runtime_args: (!rt.args.is_empty()).then(|| rt.args.clone()),
                ..Default::default()
            },
        );
    }
    // Facts of the host, asked once each (a process per binary).
    let runtime_path = runtimes
        .get(&default_runtime)
        .and_then(|r| r.path.clone())
        .map(std::path::PathBuf::from);
    let data_root = engine.config.data_root.clone();
    let (backing_fs, runtime_version, init_version) = tokio::task::spawn_blocking(move || {
        (
            crate::host_info::backing_filesystem(&data_root),
            runtime_path.and_then(|p| crate::host_info::version_of(&p)),
            crate::containers::oci::security::init_binary()
                .ok()
                .and_then(|p| crate::host_info::version_of(&p)),
        )
    })
    .await
    .map_err(crate::error::Error::internal)?;
    let mut info = SystemInfo {
        id: Some(engine.id.clone()),
        containers: Some(total as i64),
        containers_running: Some(running as i64),
        containers_paused: Some(paused as i64),
        containers_stopped: Some(stopped as i64),
        images: Some(images as i64),
        driver: Some("overlayfs".into()),
        driver_status: Some(vec![vec!["Backing Filesystem".into(), backing_fs]]),
        docker_root_dir: Some(engine.config.data_root.display().to_string()),
        memory_limit: Some(true),
        swap_limit: Some(false),
        cpu_cfs_period: Some(true),
        cpu_cfs_quota: Some(true),
        cpu_shares: Some(true),
        cpu_set: Some(true),
        pids_limit: Some(true),
        oom_kill_disable: Some(false),
        ipv4_forwarding: Some(false),
        debug: Some(engine.config.log_level == "debug"),
        nfd: Some(
            std::fs::read_dir("/proc/self/fd")
                .map(|d| d.count() as i64)
                .unwrap_or(0),
        ),
        n_goroutines: Some(0),
        system_time: Some(crate::util::now_rfc3339()),
        logging_driver: Some(engine.config.log_driver.clone()),
        cgroup_driver: serde_json::from_value(json!("cgroupfs")).ok(),
        cgroup_version: serde_json::from_value(json!(cgroup_version())).ok(),
        n_events_listener: Some(engine.events.listeners() as i64),
        kernel_version: Some(crate::host_info::kernel_version()),
        operating_system: Some(crate::host_info::os_name()),
        os_type: Some("linux".into()),
        architecture: Some(std::env::consts::ARCH.into()),
        ncpu: Some(
            std::thread::available_parallelism()
                .map(|n| n.get() as i64)
                .unwrap_or(1),
        ),
        mem_total: Some(crate::host_info::mem_total()),
        index_server_address: Some("https://index.docker.io/v1/".into()),
        name: Some(
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
        ),
        labels: Some(engine.settings().labels.clone()),
        experimental_build: Some(false),
        server_version: Some(env!("CARGO_PKG_VERSION").into()),
        runtimes: Some(runtimes),
        default_runtime: Some(default_runtime),
        live_restore_enabled: Some(true),
        isolation: None,
        init_binary: Some("docker-init".into()),
        // Docker's spelling: the built-in seccomp profile applies unless a
        // container says otherwise; cgroupns where containers get one.
        security_options: Some({
            let mut o = vec!["name=seccomp,profile=builtin".to_string()];
            if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                o.push("name=cgroupns".into());
            }
            o
        }),
        warnings: Some(vec![]),
        ..Default::default()
    };
    let registries = engine.images.registries();
    let mirrors: Vec<&str> = registries
        .mirrors()
        .iter()
        .map(|m| m.url.as_str())
        .collect();
    info.registry_config = serde_json::from_value(json!({
        "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": mirrors, "Secure": true, "Official": true}},
        "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
        "Mirrors": mirrors
    }))
    .ok();
    // What dockerd lists as built in, for what Berth has: the local volume
    // driver, the network drivers of `docker network ls` and the log
    // drivers that keep logs (dockerd does not list `none` either).
    info.plugins = Some(bollard_stubs::models::PluginsInfo {
        volume: Some(vec!["local".into()]),
        network: Some(vec!["bridge".into(), "host".into(), "null".into()]),
        authorization: None,
        log: Some(
            crate::containers::io::log_opts::SUPPORTED
                .iter()
                .filter(|d| **d != "none")
                .map(|d| d.to_string())
                .collect(),
        ),
    });
    info.swarm = serde_json::from_value(json!({"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null})).ok();
    if let Some(h) = &core {
        let id = if reachable {
            format!("berth-core {}", h.core_version)
        } else {
            "berth-core unreachable".to_string()
        };
        info.containerd_commit = serde_json::from_value(json!({"ID": id})).ok();
    }
    // The CLI's "runc version" is the default runtime's (crun's, often).
    if let Some(v) = runtime_version {
        info.runc_commit = serde_json::from_value(json!({"ID": v})).ok();
    }
    if let Some(v) = init_version {
        info.init_commit = serde_json::from_value(json!({"ID": v})).ok();
    }
    if !reachable {
        info.warnings = Some(vec![format!(
            "WARNING: berth-core is not reachable at {}",
            engine.core.socket().display()
        )]);
    }
    Ok(super::shape::INFO.json(&info, version))
}

/// `GET /events`: replays retained events from `since`, then follows live
/// ones until `until` (if given) or until the client goes away.
pub async fn events(
    AxState(engine): AxState<State>,
    axum::extract::Query(q): axum::extract::Query<Query>,
) -> Result<axum::response::Response> {
    let filters = EventFilter::parse(q.get("filters").map(String::as_str))?;
    let time = |key: &str| -> Result<Option<i128>> {
        match q.get(key).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(v) => crate::util::parse_time_filter(v)
                .map(Some)
                .ok_or_else(|| Error::InvalidArgument(format!("invalid value for {key}: {v}"))),
        }
    };
    let (since, until) = (time("since")?, time("until")?);
    let (backlog, rx) = engine.events.subscribe(since);
    let now_nanos = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0)
    };
    let line =
        |e: &Event| axum::body::Bytes::from(serde_json::to_string(e).unwrap_or_default() + "\n");
    let before_until = move |e: &Event| until.is_none_or(|u| (e.time_nano as i128) <= u);
    let replay: Vec<_> = backlog
        .iter()
        .filter(|e| filters.matches(e) && before_until(e))
        .map(line)
        .collect();
    let live_ends_at = until.map(|u| {
        tokio::time::Instant::now()
            + std::time::Duration::from_nanos((u - now_nanos()).max(0) as u64)
    });
    let live = futures_util::stream::unfold((rx, filters), move |(mut rx, filters)| async move {
        loop {
            let next = match live_ends_at {
                Some(at) => match tokio::time::timeout_at(at, rx.recv()).await {
                    Ok(r) => r,
                    Err(_) => return None,
                },
                None => rx.recv().await,
            };
            match next {
                Ok(e) if filters.matches(&e) && before_until(&e) => {
                    return Some((Ok::<_, std::convert::Infallible>(line(&e)), (rx, filters)))
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    });
    use futures_util::StreamExt;
    let body = futures_util::stream::iter(replay.into_iter().map(Ok)).chain(live);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// `GET /system/df`: images (with the size they share with others),
/// containers (with their writable layers), volumes, the build cache, and
/// the total of all layers.
pub async fn df(
    AxState(engine): AxState<State>,
    Extension(version): Extension<ApiVersion>,
) -> Result<axum::response::Response> {
    let (layers_size, shared) = engine.images.layer_usage().await?;
    let mut images = Vec::new();
    // Build steps' images are counted as build cache, not as images.
    for summary in engine.images.list(&Default::default(), false).await? {
        let mut v = serde_json::to_value(&summary).map_err(Error::internal)?;
        v["SharedSize"] = json!(shared.get(&summary.id).copied().unwrap_or(0));
        images.push(v);
    }
    let containers = engine.containers.disk_usage().await?;
    let mut volumes =
        serde_json::to_value(engine.volumes.usage().await?).map_err(Error::internal)?;
    super::shape::VOLUME.apply_each(&mut volumes, version);
    Ok(Json(json!({
        "LayersSize": layers_size,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": super::shape::nil_if_empty(&engine.builder.usage().await?),
    }))
    .into_response())
}
