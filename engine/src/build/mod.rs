//! `docker build` with the legacy builder protocol: `POST /build` with a
//! tar context, answered by a stream of JSON messages.
//!
//! A build unpacks its context into `<data-root>/builds/<id>/context`,
//! parses the Dockerfile and runs its steps in order (`steps.rs`). Every
//! step makes an image, as the legacy builder does: RUN through a real
//! container started by the core (`run.rs`), COPY and ADD by writing into
//! an overlay mount of the parent image (`copy.rs`), the other
//! instructions by changing the config only. A step's image is found again
//! through the build cache (`cache.rs`), keyed by the parent image and what
//! the step does, so an unchanged rebuild starts no container.

pub mod cache;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod git;
pub mod ignore;
pub mod inline_cache;
pub mod mounts;
pub mod report;
pub mod run;
pub mod status;
pub mod steps;
pub mod words;
pub mod workspace;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use crate::containers::Containers;
use crate::error::{Error, Result};
use crate::images::progress::Progress;
use crate::images::reference::Reference;
use crate::images::Images;
use crate::metrics::METRICS;
use crate::store::Store;

/// `POST /build`'s query, checked.
#[derive(Debug, Default, Clone)]
pub struct BuildOptions {
    pub tags: Vec<Reference>,
    /// Path of the Dockerfile inside the context.
    pub dockerfile: String,
    /// `--build-arg`: a name without a value (`None`) keeps the default.
    pub build_args: HashMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub target: String,
    pub no_cache: bool,
    pub pull: bool,
    /// Remove intermediate containers after a successful step (default).
    pub rm: bool,
    /// Remove them even after a failed one.
    pub force_rm: bool,
    pub quiet: bool,
    /// RUN steps' network: "" (the default bridge), a network, host or none.
    pub network_mode: String,
    /// `--add-host` for RUN steps ("name:ip").
    pub extra_hosts: Vec<String>,
    /// `--cache-from`: when given, the only images cached steps may come from.
    pub cache_from: Vec<String>,
    pub platform: String,
    pub auth: crate::images::registry::AuthConfig,
    /// BuildKit's rule: stages the target does not depend on are not built
    /// (the legacy builder builds every stage up to the target).
    pub skip_unused_stages: bool,
}

pub struct Builder {
    pub(crate) containers: Arc<Containers>,
    pub(crate) images: Arc<Images>,
    pub(crate) store: Store,
    /// `<data-root>/builds`: one directory per build in progress.
    root: PathBuf,
    /// `RUN --mount=type=cache` directories, kept between builds.
    pub cache_mounts: mounts::CacheMounts,
}

/// What a BuildKit solve gives a build beyond its options: the caller's
/// secrets and SSH agents, and the entitlements it was granted.
#[derive(Clone, Default)]
pub struct BuildKitHooks {
    pub caller: Option<Arc<dyn mounts::Caller>>,
    /// `network.host`, `security.insecure`.
    pub entitlements: Vec<String>,
    /// `--build-context name=…`, by lower-cased name.
    pub named_contexts: std::collections::HashMap<String, NamedContext>,
    /// `--cache-from` images' records: steps taken from a registry.
    pub cache_imports: inline_cache::Imports,
}

/// What a named build context stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedContext {
    /// A directory of the caller's, already fetched (`COPY --from=name`).
    Dir(PathBuf),
    /// An image reference (`docker-image://…`): FROM and `--from` use it.
    Image(String),
}

impl Builder {
    /// Sets up the builds directory; a crashed engine's leftovers
    /// (unpacked contexts, overlay mounts of unfinished steps) go first.
    pub fn new(containers: Arc<Containers>, data_root: &std::path::Path) -> Result<Builder> {
        let root = data_root.join("builds");
        workspace::unmount_below(&root);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)?;
        Ok(Builder {
            images: containers.images.clone(),
            store: containers.store.clone(),
            containers,
            root,
            cache_mounts: mounts::CacheMounts::new(data_root.join("build-cache-mounts")),
        })
    }

    /// A fresh directory for one build (removed by the caller).
    pub fn new_dir(&self) -> PathBuf {
        self.root.join(crate::util::random_id())
    }

    /// Runs a Dockerfile whose context is already in `ctx` (a BuildKit
    /// solve's: it came over the session) and returns the image, untagged;
    /// the exporters name it. A failure is also reported to `out`.
    pub async fn build_image(
        self: &Arc<Self>,
        opts: BuildOptions,
        dir: PathBuf,
        ctx: PathBuf,
        dockerfile_text: &str,
        out: report::Output,
        hooks: BuildKitHooks,
    ) -> Result<crate::store::ImageRow> {
        METRICS.build_started();
        let plan = dockerfile::parse(dockerfile_text)
            .and_then(|df| steps::Plan::new(df, &opts))
            .inspect_err(count_failure)?;
        let mut build = steps::Build::new(self.clone(), opts, dir, ctx, out);
        build.buildkit = Some(hooks);
        let result = build.build(plan).await;
        if let Err(e) = &result {
            count_failure(e);
            build.out.failed(e);
        }
        result
    }

    /// Starts a build from the context in `body` (a file the caller made,
    /// removed here). Problems found before any step runs (no Dockerfile,
    /// a parse error, an unknown target) are returned as errors, so they
    /// go out as HTTP statuses; everything later goes into the stream.
    pub async fn start(
        self: &Arc<Self>,
        opts: BuildOptions,
        body: PathBuf,
    ) -> Result<Arc<Progress>> {
        let dir = self.root.join(crate::util::random_id());
        let ctx = dir.join("context");
        let dockerfile_name = opts.dockerfile.clone();
        let prepared = {
            let (dir, ctx) = (dir.clone(), ctx.clone());
            tokio::task::spawn_blocking(move || -> Result<dockerfile::Dockerfile> {
                std::fs::create_dir_all(&dir)?;
                let text = context::unpack(&body, &ctx, &dockerfile_name);
                let _ = std::fs::remove_file(&body);
                dockerfile::parse(&text?)
            })
            .await
            .map_err(Error::internal)?
        };
        METRICS.build_started();
        let df = match prepared.and_then(|df| steps::Plan::new(df, &opts)) {
            Ok(plan) => plan,
            Err(e) => {
                count_failure(&e);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let progress = Progress::new();
        let out = progress.clone();
        let this = self.clone();
        tokio::spawn(async move {
            let output = report::Output::legacy(out.clone(), opts.quiet);
            steps::Build::new(this, opts, dir.clone(), ctx, output)
                .run(df)
                .await;
            workspace::unmount_below(&dir);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "removing a build's directory");
            }
            out.finish();
        });
        Ok(progress)
    }
}

/// Counts a failed build under dockerd's reason for it.
pub fn count_failure(e: &Error) {
    let text = e.to_string();
    let reason = if text.contains("unknown instruction") {
        "unknown_instruction_error"
    } else if text.contains("cannot be empty") {
        "dockerfile_empty_error"
    } else if text.contains("parse error") {
        "dockerfile_syntax_error"
    } else if text.contains("failed to reach build target") {
        "build_target_not_reachable_error"
    } else {
        "error_processing_commands_error"
    };
    METRICS.build_failed(reason);
}
