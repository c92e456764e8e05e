//! RUN: the command runs in a real container, created and started through
//! the engine and the core like any other (so it has the build's user,
//! working directory, environment and network), its output relayed into
//! the build stream as it comes, and its filesystem changes committed as
//! the step's layer.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard_stubs::models::{ContainerConfig, HealthConfig, HostConfig, HostConfigLogConfig};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::dockerfile::{Args, Instruction};
use super::mounts;
use super::steps::{short_id, Build, FromRoot, Stage, PROXY_ARGS};
use crate::containers::lifecycle::WaitCondition;
use crate::containers::CreateRequest;
use crate::error::{Error, Result};
use crate::images::commit::CommitInfo;

/// The command line RUN executes, heredocs included.
fn command(ins: &Instruction, stage: &Stage) -> Vec<String> {
    let mut argv = match &ins.args {
        Args::Exec(v) => return v.clone(),
        Args::Shell(_) => stage.shell(),
    };
    let text = ins.text();
    if let Some(doc) = ins.heredocs.first() {
        // `RUN <<EOF` alone: the heredoc is the script. Otherwise the shell
        // gets the line and the heredocs, which it reads itself.
        let alone = text
            .trim()
            .trim_start_matches("<<")
            .trim_start_matches('-')
            .trim_matches(|c| c == '"' || c == '\'')
            == doc.name;
        if alone && ins.heredocs.len() == 1 {
            argv.push(doc.body.clone());
            return argv;
        }
        let mut script = text;
        for d in &ins.heredocs {
            script.push('\n');
            script.push_str(&d.body);
            script.push_str(&d.name);
        }
        argv.push(script);
        return argv;
    }
    argv.push(text);
    argv
}

pub async fn step(build: &mut Build, stage: &mut Stage, ins: &Instruction) -> Result<()> {
    // --mount, --network and --security are BuildKit's; the legacy
    // builder refuses them in dockerd's words.
    if let (Some((flag, _)), None) = (ins.flags.first(), &build.buildkit) {
        return Err(Error::InvalidArgument(format!(
            "the --{flag} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"
        )));
    }
    ins.allow_flags(&["mount", "network", "security"])?;
    let flags = mounts::parse_flags(&ins.flags).map_err(|e| match e {
        Error::InvalidArgument(m) => {
            Error::InvalidArgument(format!("dockerfile parse error line {}: {m}", ins.line))
        }
        other => other,
    })?;
    let entitled = |e: &str| {
        build
            .buildkit
            .as_ref()
            .is_some_and(|h| h.entitlements.iter().any(|x| x == e))
    };
    if flags.network.as_deref() == Some("host") && !entitled("network.host") {
        return Err(Error::Forbidden("network.host is not allowed".into()));
    }
    if flags.insecure && !entitled("security.insecure") {
        return Err(Error::Forbidden("security.insecure is not allowed".into()));
    }
    let argv = command(ins, stage);
    if argv.is_empty() {
        return Err(Error::InvalidArgument(
            "RUN requires at least one argument".into(),
        ));
    }
    // Build args in scope reach the environment (ENV wins) and, except the
    // proxy ones, the history line and so the cache key.
    let env_now = stage.env();
    let mut env: Vec<String> = env_now.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut shown = Vec::new();
    for (k, v) in &stage.args {
        if env_now.iter().any(|(e, _)| e == k) {
            continue;
        }
        env.push(format!("{k}={v}"));
        shown.push(format!("{k}={v}"));
    }
    for p in PROXY_ARGS {
        if let Some(Some(v)) = build.opts.build_args.get(*p) {
            build.used_args.insert(p.to_string());
            if !env.iter().any(|e| e.starts_with(&format!("{p}="))) {
                env.push(format!("{p}={v}"));
            }
        }
    }
    let cmdline = argv.join(" ");
    let created_by = if shown.is_empty() {
        cmdline.clone()
    } else {
        format!("|{} {} {cmdline}", shown.len(), shown.join(" "))
    };
    // What bind mounts show the step, mounted now: their content (or
    // their image's id) is part of what the step depends on.
    let mut bind_roots: HashMap<String, PathBuf> = HashMap::new();
    let mut image_ids: HashMap<String, String> = HashMap::new();
    let mut mounted: Vec<FromRoot> = Vec::new();
    let mut bind_keys = Vec::new();
    for m in &flags.mounts {
        let (source, from, is_bind) = match m {
            mounts::MountSpec::Bind { source, from, .. } => (source, from, true),
            // A cache's seed (from=) is mounted too; what a cache holds is
            // not part of the key, as in BuildKit.
            mounts::MountSpec::Cache {
                source,
                from: from @ Some(_),
                ..
            } => (source, from, false),
            _ => continue,
        };
        let key = from.clone().unwrap_or_default();
        if !bind_roots.contains_key(&key) {
            let root = match from {
                None => build.ctx.clone(),
                Some(f) => {
                    let r = build.from_root(f).await?;
                    image_ids.insert(key.clone(), r.image_id.clone());
                    let root = r.root.clone();
                    mounted.push(r);
                    root
                }
            };
            bind_roots.insert(key.clone(), root);
        }
        if !is_bind {
            continue;
        }
        bind_keys.push(match image_ids.get(&key).filter(|id| !id.is_empty()) {
            Some(id) => format!("bind {source} of {id}"),
            None => {
                // A directory (the context, a named one): its content.
                let path = mounts::inside(&bind_roots[&key], source)?;
                let source = source.clone();
                tokio::task::spawn_blocking(move || -> Result<String> {
                    let mut h = Sha256::new();
                    super::copy::hash_source(&mut h, &path, &source, true)?;
                    Ok(format!("bind {source}: {}", hex::encode(h.finalize())))
                })
                .await
                .map_err(Error::internal)??
            }
        });
    }
    // The flags change what the step does (not the secrets' values).
    let cache_text = if flags.is_empty() {
        created_by.clone()
    } else {
        let mut text = format!("{created_by}\n{}", flags.cache_text());
        for k in &bind_keys {
            text.push('\n');
            text.push_str(k);
        }
        text
    };
    if build.cached(stage, &cache_text).await? {
        return Ok(());
    }

    let containers = build.b.containers.clone();
    // As the classic builder: RUN steps are on the default bridge unless
    // the build names another network (any the engine has), host or none.
    let scratch = build.scratch_dir("run-mounts");
    let network = match (&flags.network, build.opts.network_mode.as_str()) {
        (Some(n), _) => n.as_str(),
        (None, "") => "default",
        (None, n) => n,
    };
    let caller = build.buildkit.as_ref().and_then(|h| h.caller.clone());
    let provision =
        mounts::Provision::make(&flags, &build.b.cache_mounts, caller, &scratch, &bind_roots)
            .await?;
    env.extend(provision.env.iter().cloned());
    let text = |key: &str| stage.config[key].as_str().map(str::to_string);
    let req = CreateRequest {
        config: ContainerConfig {
            image: Some(stage.image.id.clone()),
            entrypoint: Some(vec![argv[0].clone()]),
            cmd: Some(argv[1..].to_vec()),
            env: Some(env),
            user: text("User"),
            working_dir: text("WorkingDir"),
            healthcheck: Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }),
            ..Default::default()
        },
        host_config: HostConfig {
            network_mode: Some(network.to_string()),
            extra_hosts: Some(build.opts.extra_hosts.clone()),
            mounts: (!provision.mounts.is_empty()).then(|| provision.mounts.clone()),
            tmpfs: (!provision.tmpfs.is_empty()).then(|| provision.tmpfs.clone()),
            privileged: flags.insecure.then_some(true),
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        },
        host_config_given: true,
        ..Default::default()
    };
    if stage.image.id.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "The command '{cmdline}' cannot run: the image is empty (FROM scratch has no shell)"
        )));
    }
    let (id, _) = containers.create(None, req).await?;
    let short = short_id(&id);
    build.out.say(&format!(" ---> Running in {short}\n"));
    let output = containers.attach_output(&id);
    let exited = containers.wait(&id, WaitCondition::NextExit).await?;
    if let Err(e) = containers.start(&id).await {
        if build.opts.force_rm {
            let _ = containers.remove(&id, true, true).await;
        }
        return Err(e);
    }
    if let Ok(mut conn) = output.await {
        relay(build, &mut conn).await;
    }
    let (code, _) = exited.await;
    if code != 0 {
        if build.opts.force_rm {
            let _ = containers.remove(&id, true, true).await;
        }
        return Err(build.out.command_failed(&cmdline, code));
    }
    let upper = containers.paths(&id).upper();
    crate::containers::fs::diff::forget_mount_points(&upper);
    forget_mount_targets(&upper, &provision.targets);
    drop(provision);
    let _ = std::fs::remove_dir_all(&scratch);
    let img = build
        .b
        .images
        .commit_row(
            &stage.image,
            Some(upper),
            CommitInfo::step(stage.config.clone(), &id, created_by.clone()),
        )
        .await?;
    if build.opts.rm || build.opts.force_rm {
        containers.remove(&id, true, true).await?;
        build
            .out
            .say(&format!("Removing intermediate container {short}\n"));
    }
    build.advance(stage, img, &cache_text).await
}

/// Takes the placeholders of RUN's own mounts (`--mount` targets) out of
/// the step's layer, and their parents the runtime made for them, as
/// BuildKit leaves no trace of a mount in the image.
fn forget_mount_targets(upper: &std::path::Path, targets: &[String]) {
    let Ok(root) = crate::confined::Confined::open(upper) else {
        return;
    };
    for t in targets {
        let Some(mut rel) = crate::confined::clean(std::path::Path::new(t)) else {
            continue;
        };
        // Parents the runtime made for the mount go too, when empty.
        while !rel.as_os_str().is_empty()
            && crate::containers::fs::diff::remove_placeholder(&root, &rel)
        {
            rel.pop();
        }
    }
}

/// Copies the shim's frames into the build's output, never splitting a
/// UTF-8 character between two messages.
async fn relay(build: &mut Build, conn: &mut tokio::net::UnixStream) {
    let mut header = [0u8; 8];
    // Bytes not yet sent, per stream (index 2: stderr).
    let mut pending: [Vec<u8>; 3] = Default::default();
    let say = |build: &mut Build, stream: usize, text: &str| {
        build.out.command_output(stream == 2, text);
    };
    loop {
        if conn.read_exact(&mut header).await.is_err() {
            break;
        }
        let (stream, len) = berth_proto::attach::parse_header(&header);
        let stream = if stream as usize == 2 { 2 } else { 1 };
        let buf = &mut pending[stream];
        let start = buf.len();
        buf.resize(start + len, 0);
        if conn.read_exact(&mut buf[start..]).await.is_err() {
            break;
        }
        let valid = match std::str::from_utf8(buf) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => buf.len(),
        };
        if valid > 0 {
            let text = String::from_utf8_lossy(&buf[..valid]).into_owned();
            buf.drain(..valid);
            say(build, stream, &text);
        }
    }
    for (stream, buf) in pending.iter().enumerate() {
        if !buf.is_empty() {
            say(build, stream, &String::from_utf8_lossy(buf));
        }
    }
}
