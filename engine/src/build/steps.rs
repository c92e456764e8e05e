//! Running a parsed Dockerfile: stages, the "Step n/N" messages, the
//! instructions that only change the image config, the cache lookup around
//! every step, and the end (the image id, tags). RUN is in `run.rs`, COPY
//! and ADD in `copy.rs`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use super::dockerfile::{Args, Dockerfile, Instruction};
use super::report::{Output, StepHeader};
use super::workspace::Workspace;
use super::{cache, words, BuildOptions, Builder};
use crate::error::{Error, Result};
use crate::images::commit::CommitInfo;
use crate::images::reference::{familiar, Reference};
use crate::store::ImageRow;

/// Build args every build knows without an ARG line; they reach RUN's
/// environment but neither the history nor the cache key.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

pub struct StagePlan {
    pub from: Instruction,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    pub body: Vec<Instruction>,
    /// Not built: the target does not depend on it (BuildKit only).
    pub skipped: bool,
}

/// The stages to run (up to `--target`), checked before the build starts.
pub struct Plan {
    pub meta_args: Vec<Instruction>,
    pub stages: Vec<StagePlan>,
    pub total: usize,
    pub escape: char,
    pub warnings: Vec<String>,
    /// More than one FROM in the Dockerfile (BuildKit then names steps
    /// by their stage).
    pub multi_stage: bool,
}

impl Plan {
    pub fn new(df: Dockerfile, opts: &BuildOptions) -> Result<Plan> {
        let mut meta_args = Vec::new();
        let mut stages: Vec<StagePlan> = Vec::new();
        for ins in df.instructions {
            if ins.name == "from" {
                let parts: Vec<String> =
                    ins.text().split_whitespace().map(str::to_string).collect();
                let name = match parts.len() {
                    1 => None,
                    3 if parts[1].eq_ignore_ascii_case("as") => Some(parts[2].to_ascii_lowercase()),
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "dockerfile parse error line {}: FROM requires either one or three arguments",
                            ins.line
                        )));
                    }
                };
                if let Some(n) = &name {
                    if !n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        || !n
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                    {
                        return Err(Error::InvalidArgument(format!(
                            "invalid name for build stage: {n:?}, name can't start with a number or contain symbols"
                        )));
                    }
                    if stages.iter().any(|s| s.name.as_ref() == Some(n)) {
                        return Err(Error::InvalidArgument(format!(
                            "duplicate name {n:?} for build stages"
                        )));
                    }
                }
                stages.push(StagePlan {
                    from: ins,
                    name,
                    body: Vec::new(),
                    skipped: false,
                });
            } else if let Some(stage) = stages.last_mut() {
                stage.body.push(ins);
            } else if ins.name == "arg" {
                meta_args.push(ins);
            } else {
                return Err(Error::InvalidArgument(format!(
                    "dockerfile parse error line {}: no build stage in current context",
                    ins.line
                )));
            }
        }
        if stages.is_empty() {
            return Err(Error::InvalidArgument(
                "dockerfile parse error: no build stage in current context".into(),
            ));
        }
        let multi_stage = stages.len() > 1;
        if !opts.target.is_empty() {
            let t = opts.target.to_ascii_lowercase();
            let at = stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.as_str()))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "failed to reach build target {} in Dockerfile",
                        opts.target
                    ))
                })?;
            stages.truncate(at + 1);
        }
        if opts.skip_unused_stages {
            let needed = needed_stages(&stages_refs(&stages));
            for (stage, needed) in stages.iter_mut().zip(needed) {
                stage.skipped = !needed;
            }
        }
        if !opts.labels.is_empty() {
            // The legacy builder adds `--label`s as a last LABEL step.
            let text = opts
                .labels
                .iter()
                .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
                .collect::<Vec<_>>()
                .join(" ");
            let last = stages.last_mut().expect("one stage");
            last.body.push(Instruction {
                name: "label".into(),
                flags: Vec::new(),
                args: Args::Shell(text.clone()),
                heredocs: Vec::new(),
                original: format!("LABEL {text}"),
                line: 0,
            });
        }
        if !opts.platform.is_empty() {
            check_platform(&opts.platform)?;
        }
        let total = stages
            .iter()
            .filter(|s| !s.skipped)
            .map(|s| 1 + s.body.len())
            .sum();
        Ok(Plan {
            meta_args,
            stages,
            total,
            multi_stage,
            escape: df.escape,
            warnings: df.warnings,
        })
    }
}

/// What each stage refers to: its FROM's base and every `--from` of its
/// instructions (COPY, ADD, RUN's `--mount=…,from=`), lower-cased.
fn stages_refs(stages: &[StagePlan]) -> Vec<(Option<String>, Vec<String>)> {
    stages
        .iter()
        .map(|s| {
            let mut refs = Vec::new();
            if let Some(base) = s.from.text().split_whitespace().next() {
                refs.push(base.to_ascii_lowercase());
            }
            for ins in &s.body {
                for (name, value) in &ins.flags {
                    match name.as_str() {
                        "from" => refs.push(value.to_ascii_lowercase()),
                        "mount" => refs.extend(
                            value
                                .split(',')
                                .filter_map(|kv| kv.trim().strip_prefix("from="))
                                .map(str::to_ascii_lowercase),
                        ),
                        _ => {}
                    }
                }
            }
            (s.name.clone(), refs)
        })
        .collect()
}

/// The earlier stages each stage refers to (by name or index); a
/// reference with a variable in it could name any of them.
fn stage_deps(stages: &[(Option<String>, Vec<String>)]) -> Vec<Vec<usize>> {
    (0..stages.len())
        .map(|i| {
            let mut deps = Vec::new();
            for r in &stages[i].1 {
                if r.contains('$') {
                    deps.extend(0..i);
                } else if let Ok(k) = r.parse::<usize>() {
                    if k < i {
                        deps.push(k);
                    }
                } else if let Some(k) = (0..i)
                    .rev()
                    .find(|k| stages[*k].0.as_deref() == Some(r.as_str()))
                {
                    deps.push(k);
                }
            }
            deps.sort_unstable();
            deps.dedup();
            deps
        })
        .collect()
}

/// Which stages the last one needs, following references backwards.
fn needed_stages(stages: &[(Option<String>, Vec<String>)]) -> Vec<bool> {
    let deps = stage_deps(stages);
    let mut needed = vec![false; stages.len()];
    if let Some(last) = needed.last_mut() {
        *last = true;
    }
    for i in (0..stages.len()).rev() {
        if needed[i] {
            for d in &deps[i] {
                needed[*d] = true;
            }
        }
    }
    needed
}

/// Double-quotes a word for a generated instruction.
fn quote(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$")
    )
}

/// One stage as it runs: its image so far and what is in scope.
pub struct Stage {
    pub image: ImageRow,
    /// The image config's "config" object (Env, Cmd, …).
    pub config: Value,
    /// ARGs declared in this stage that have a value, in order.
    pub args: Vec<(String, String)>,
    /// Whether CMD was set in this stage (ENTRYPOINT resets an inherited one).
    pub cmd_set: bool,
}

impl Stage {
    fn new(image: ImageRow) -> Stage {
        let config = image_config(&image);
        Stage {
            image,
            config,
            args: Vec::new(),
            cmd_set: false,
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        self.config["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn shell(&self) -> Vec<String> {
        let s: Vec<String> =
            serde_json::from_value(self.config["Shell"].clone()).unwrap_or_default();
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }

    pub fn working_dir(&self) -> String {
        self.config["WorkingDir"].as_str().unwrap_or("").to_string()
    }
}

fn image_config(image: &ImageRow) -> Value {
    let full: Value = image.config_value();
    match &full["config"] {
        Value::Object(_) => full["config"].clone(),
        _ => json!({}),
    }
}

/// A root files are taken from (see `Build::from_root`).
pub struct FromRoot {
    pub root: PathBuf,
    /// The image's id, or empty for a directory.
    pub image_id: String,
    /// Keeps an image mounted.
    pub workspace: Option<Workspace>,
}

pub struct Build {
    pub b: Arc<Builder>,
    pub opts: BuildOptions,
    /// The build's own directory (context, workspaces).
    pub dir: PathBuf,
    pub ctx: PathBuf,
    pub out: Output,
    pub escape: char,
    step: usize,
    total: usize,
    /// BuildKit's numbering: the stage's prefix (`build `, `stage-1 `,
    /// empty with a single stage), its step and its number of steps.
    vertex_prefix: String,
    vertex_step: usize,
    vertex_total: usize,
    /// Finished stages: name and image.
    pub done: Vec<(Option<String>, ImageRow)>,
    /// Values of the ARGs before the first FROM.
    pub meta: Vec<(String, String)>,
    /// Build args some ARG (or RUN, for the proxy ones) consumed.
    pub used_args: HashSet<String>,
    /// Counter for scratch directory names, shared by the stages that
    /// run at once.
    next_dir: Arc<AtomicUsize>,
    /// With `--cache-from`: the images (and their ancestors) a cached step
    /// may come from; resolved at the first cache lookup.
    cache_sources: Option<HashSet<String>>,
    /// Set for a BuildKit solve: RUN's `--mount`, `--network` and
    /// `--security` are allowed, with the session's secrets.
    pub buildkit: Option<super::BuildKitHooks>,
}

impl Build {
    pub fn new(
        b: Arc<Builder>,
        opts: BuildOptions,
        dir: PathBuf,
        ctx: PathBuf,
        out: Output,
    ) -> Build {
        Build {
            b,
            opts,
            dir,
            ctx,
            out,
            escape: '\\',
            step: 0,
            total: 0,
            vertex_prefix: String::new(),
            vertex_step: 0,
            vertex_total: 0,
            done: Vec::new(),
            meta: Vec::new(),
            used_args: HashSet::new(),
            next_dir: Arc::new(AtomicUsize::new(0)),
            cache_sources: None,
            buildkit: None,
        }
    }

    /// A fresh directory inside the build's own.
    pub fn scratch_dir(&mut self, what: &str) -> PathBuf {
        let n = self.next_dir.fetch_add(1, Ordering::Relaxed) + 1;
        self.dir.join(format!("{what}-{n}"))
    }

    /// The legacy builder's whole build: the steps, then the tags and
    /// "Successfully built"; failures end the stream.
    pub async fn run(mut self, plan: Plan) {
        let result = match self.build(plan).await {
            Ok(image) => self.finish(&image).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            super::count_failure(&e);
            self.out.failed(&e);
        }
    }

    /// Runs the plan's stages; the last one's image is the result.
    pub async fn build(&mut self, plan: Plan) -> Result<ImageRow> {
        self.escape = plan.escape;
        self.total = plan.total;
        for w in &plan.warnings {
            self.out.warn(w);
        }
        let image = self.run_stages(plan).await?;
        self.out.end_steps();
        Ok(image)
    }

    async fn run_stages(&mut self, plan: Plan) -> Result<ImageRow> {
        for ins in &plan.meta_args {
            for (name, value) in self.declared_args(ins, &self.meta.clone())? {
                if let Some(v) = value {
                    self.meta.retain(|(k, _)| *k != name);
                    self.meta.push((name, v));
                }
            }
        }
        if self.buildkit.is_some() && plan.stages.len() > 1 {
            return self.run_stages_at_once(plan).await;
        }
        let mut last = None;
        for (i, stage) in plan.stages.into_iter().enumerate() {
            if stage.skipped {
                // Keeps stage indices (`COPY --from=0`) right; nothing
                // refers to it.
                self.done.push((stage.name, scratch()));
                continue;
            }
            self.number_stage(i, &stage, plan.multi_stage);
            let image = self.run_stage(stage.from, stage.body).await?;
            self.done.push((stage.name, image.clone()));
            last = Some(image);
        }
        last.ok_or_else(|| Error::Internal("no stage ran".into()))
    }

    /// BuildKit's numbering for a stage's vertexes: its prefix (`build `,
    /// `stage-1 `, none with a single stage) and its count.
    fn number_stage(&mut self, i: usize, stage: &StagePlan, multi_stage: bool) {
        self.vertex_prefix = match (&stage.name, multi_stage) {
            (_, false) => String::new(),
            (Some(n), true) => format!("{n} "),
            (None, true) => format!("stage-{i} "),
        };
        self.vertex_step = 0;
        self.vertex_total = stage.body.iter().filter(|i| makes_vertex(i)).count();
    }

    /// A BuildKit solve's stages: each starts as soon as the stages it
    /// refers to are built, so independent ones run at once (as in
    /// BuildKit; the legacy builder runs them in order). Each runs in a
    /// build of its own that sees the finished stages. A failed stage
    /// fails the build once the stages already running have ended: none
    /// is stopped half-way, with a step's container running.
    async fn run_stages_at_once(&mut self, plan: Plan) -> Result<ImageRow> {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let deps = stage_deps(&stages_refs(&plan.stages));
        let n = plan.stages.len();
        let multi_stage = plan.multi_stage;
        // A stage not built yet holds an unnamed placeholder: no stage
        // refers to one that is not built (that is what `deps` ensures).
        self.done = (0..n).map(|_| (None, scratch())).collect();
        let mut built = vec![false; n];
        let mut waiting: Vec<Option<StagePlan>> = Vec::with_capacity(n);
        for (i, stage) in plan.stages.into_iter().enumerate() {
            if stage.skipped {
                self.done[i] = (stage.name, scratch());
                built[i] = true;
                waiting.push(None);
            } else {
                waiting.push(Some(stage));
            }
        }
        let mut running = FuturesUnordered::new();
        let mut failed: Option<Error> = None;
        loop {
            for i in 0..n {
                if failed.is_some() || !deps[i].iter().all(|d| built[*d]) {
                    continue;
                }
                let Some(stage) = waiting[i].take() else {
                    continue;
                };
                let mut fork = self.fork();
                fork.number_stage(i, &stage, multi_stage);
                running.push(async move {
                    let result = fork.run_stage(stage.from, stage.body).await;
                    match &result {
                        Ok(_) => fork.out.end_steps(),
                        Err(e) => fork.out.failed(e),
                    }
                    (i, stage.name, fork.used_args, result)
                });
            }
            let Some((i, name, used, result)) = running.next().await else {
                break;
            };
            self.used_args.extend(used);
            match result {
                Ok(image) => {
                    self.done[i] = (name, image);
                    built[i] = true;
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        match built.last() {
            Some(true) => Ok(self.done[n - 1].1.clone()),
            _ => Err(Error::Internal("the last stage was not built".into())),
        }
    }

    /// A build for one stage, sharing this one's options, directory,
    /// status and finished stages.
    fn fork(&self) -> Build {
        Build {
            b: self.b.clone(),
            opts: self.opts.clone(),
            dir: self.dir.clone(),
            ctx: self.ctx.clone(),
            out: self.out.fork(),
            escape: self.escape,
            step: 0,
            total: self.total,
            vertex_prefix: String::new(),
            vertex_step: 0,
            vertex_total: 0,
            done: self.done.clone(),
            meta: self.meta.clone(),
            used_args: HashSet::new(),
            next_dir: self.next_dir.clone(),
            cache_sources: None,
            buildkit: self.buildkit.clone(),
        }
    }

    /// `ARG a=1 b`: (name, value) pairs, values from --build-arg, the
    /// default, or (inside a stage) a same-named ARG before the first FROM.
    fn declared_args(
        &mut self,
        ins: &Instruction,
        env: &[(String, String)],
    ) -> Result<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        let env = env.to_vec();
        for w in words::words(&ins.text(), self.escape, &env)? {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w.clone(), None),
            };
            if name.is_empty() {
                return Err(Error::InvalidArgument("ARG names can not be blank".into()));
            }
            let given = self.opts.build_args.get(&name).cloned().flatten();
            if self.opts.build_args.contains_key(&name) {
                self.used_args.insert(name.clone());
            }
            let value = given.or(default).or_else(|| {
                self.meta
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            });
            out.push((name, value));
        }
        Ok(out)
    }

    fn header(&mut self, ins: &Instruction) {
        self.header_shown(ins, makes_vertex(ins));
    }

    /// Announces a step; `shown` says whether BuildKit shows a vertex
    /// for it (every counted step but FROM a stage).
    fn header_shown(&mut self, ins: &Instruction, shown: bool) {
        self.step += 1;
        let legacy = format!("Step {}/{} : {}\n", self.step, self.total, ins.original);
        let vertex = shown.then(|| {
            self.vertex_step += 1;
            // BuildKit pads the index to the width of the total: `[ 1/12]`.
            format!(
                "[{}{:>width$}/{}] {}",
                self.vertex_prefix,
                self.vertex_step,
                self.vertex_total,
                vertex_text(ins),
                width = self.vertex_total.to_string().len()
            )
        });
        self.out.step(StepHeader {
            legacy: &legacy,
            vertex,
        });
    }

    async fn run_stage(&mut self, from: Instruction, body: Vec<Instruction>) -> Result<ImageRow> {
        // BuildKit resolves a base image's config before the stage's steps
        // and shows that as a vertex of its own.
        let meta = self.meta.clone();
        let mut from_image = false;
        if let Some(base) = words::words(&from.text(), self.escape, &meta)
            .ok()
            .and_then(|p| p.first().cloned())
        {
            let lower = base.to_ascii_lowercase();
            let is_stage = self
                .done
                .iter()
                .any(|(n, _)| n.as_deref() == Some(lower.as_str()));
            if !is_stage && !base.eq_ignore_ascii_case("scratch") {
                if let Ok(r) = Reference::parse(&base) {
                    from_image = true;
                    self.out
                        .internal(&format!("[internal] load metadata for {}", r.normalized()));
                }
            }
        }
        // FROM an earlier stage (or scratch) is, as in BuildKit, neither
        // shown nor counted among the stage's vertexes: nothing is fetched.
        self.vertex_total += usize::from(from_image);
        self.header_shown(&from, from_image);
        from.allow_flags(&["platform"])?;
        let meta = self.meta.clone();
        if let Some(p) = from.flag("platform") {
            check_platform(&words::word(p, self.escape, &meta)?)?;
        }
        let parts = words::words(&from.text(), self.escape, &meta)?;
        let base = parts.first().cloned().unwrap_or_default();
        if base.is_empty() {
            return Err(Error::InvalidArgument(
                "base name (${}) should not be blank".into(),
            ));
        }
        let image = self.base_image(&base, true).await?;
        let short = short_id(&image.id);
        self.out.say(&format!(" ---> {short}\n"));
        let mut stage = Stage::new(image);
        let triggers: Vec<String> =
            serde_json::from_value(stage.config["OnBuild"].clone()).unwrap_or_default();
        if !triggers.is_empty() {
            let n = triggers.len();
            self.out.say(&format!(
                "# Executing {n} build trigger{}\n",
                if n == 1 { "" } else { "s" }
            ));
            stage.config["OnBuild"] = Value::Null;
            for t in triggers {
                let ins = super::dockerfile::parse_one(&t, from.line)?;
                self.dispatch(&mut stage, &ins).await?;
            }
        }
        for ins in &body {
            self.header(ins);
            self.dispatch(&mut stage, ins).await?;
        }
        Ok(stage.image)
    }

    /// The image a FROM (or `COPY --from`) names: `scratch`, an earlier
    /// stage, or an image, pulled when missing (or always with --pull).
    /// What `COPY --from=` and `RUN --mount=…,from=` name: a named
    /// context's directory, or a stage (by name or index) or image,
    /// mounted for as long as the returned value lives.
    pub async fn from_root(&mut self, from: &str) -> Result<FromRoot> {
        let lower = from.to_ascii_lowercase();
        let named = self
            .buildkit
            .as_ref()
            .and_then(|h| h.named_contexts.get(&lower).cloned());
        if let Some(super::NamedContext::Dir(dir)) = named {
            return Ok(FromRoot {
                root: dir,
                image_id: String::new(),
                workspace: None,
            });
        }
        let img = match from.parse::<usize>() {
            Ok(i) => self
                .done
                .get(i)
                .map(|(_, img)| img.clone())
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "invalid from flag value {from}: no stage {i} before this one"
                    ))
                })?,
            Err(_) => self.base_image(from, true).await?,
        };
        let dir = self.scratch_dir("from");
        let ws = Workspace::mount(&self.b.images, &img, dir)?;
        Ok(FromRoot {
            root: ws.rootfs(),
            image_id: img.id.clone(),
            workspace: Some(ws),
        })
    }

    pub async fn base_image(&mut self, name: &str, stages: bool) -> Result<ImageRow> {
        if name.eq_ignore_ascii_case("scratch") {
            return Ok(scratch());
        }
        let lower = name.to_ascii_lowercase();
        // A named context of the image kind replaces the name (and wins
        // over a stage of that name, as in BuildKit).
        let named = self
            .buildkit
            .as_ref()
            .and_then(|h| h.named_contexts.get(&lower).cloned());
        let name = match &named {
            Some(super::NamedContext::Image(r)) => r.as_str(),
            Some(super::NamedContext::Dir(_)) => {
                return Err(Error::InvalidArgument(format!(
                    "build context {name:?} is a directory: it can be copied from, not built upon"
                )))
            }
            None => name,
        };
        if stages && named.is_none() {
            if let Some((_, img)) = self
                .done
                .iter()
                .rev()
                .find(|(n, _)| n.as_deref() == Some(lower.as_str()))
            {
                return Ok(img.clone());
            }
        }
        let local = self.b.images.find(name).await?;
        match local {
            Some(img) if !self.opts.pull => Ok(img),
            _ => {
                let reference = Reference::parse(name)?;
                self.pull(reference.clone()).await?;
                self.b
                    .images
                    .find(name)
                    .await?
                    .ok_or_else(|| Error::no_such_image(name))
            }
        }
    }

    /// Pulls, relaying progress; a registry error becomes the build's.
    async fn pull(&mut self, reference: Reference) -> Result<()> {
        use futures_util::StreamExt;
        let p = self
            .b
            .images
            .pull(crate::images::pull::PullRequest {
                reference,
                platform: None,
                auth: self.opts.auth.clone(),
            })
            .await?;
        let mut failed = None;
        let mut s = std::pin::pin!(p.follow());
        while let Some(Ok(chunk)) = s.next().await {
            for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let v: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
                if let Some(m) = v["errorDetail"]["message"].as_str() {
                    failed = Some(m.to_string());
                } else if let Some(p) = self.out.legacy_stream().filter(|_| !self.out.is_quiet()) {
                    p.relay(bytes::Bytes::from([line, b"\n"].concat()));
                }
            }
        }
        match failed {
            Some(m) => Err(Error::NotFound(m)),
            None => Ok(()),
        }
    }

    async fn dispatch(&mut self, stage: &mut Stage, ins: &Instruction) -> Result<()> {
        match ins.name.as_str() {
            "run" => super::run::step(self, stage, ins).await,
            "copy" | "add" => super::copy::step(self, stage, ins).await,
            "workdir" => super::copy::workdir(self, stage, ins).await,
            "from" => Err(Error::InvalidArgument(
                "FROM isn't allowed as an ONBUILD trigger".into(),
            )),
            _ => {
                let mut config = stage.config.clone();
                let (text, author) = self.apply_config(stage, &mut config, ins)?;
                let created_by = format!("/bin/sh -c #(nop)  {text}");
                if self.cached(stage, &created_by).await? {
                    return Ok(());
                }
                let mut info = CommitInfo::step(config, "", created_by.clone());
                info.author = author;
                let img = self.b.images.commit_row(&stage.image, None, info).await?;
                self.advance(stage, img, &created_by).await
            }
        }
    }

    /// The config instructions. Returns the text for history and, for
    /// MAINTAINER, the author.
    fn apply_config(
        &mut self,
        stage: &mut Stage,
        cfg: &mut Value,
        ins: &Instruction,
    ) -> Result<(String, String)> {
        let mut env = stage.args.clone();
        env.extend(stage.env());
        let esc = self.escape;
        let text = ins.text();
        let upper = ins.name.to_ascii_uppercase();
        let allow_none = ins.name != "healthcheck";
        if allow_none {
            ins.allow_flags(&[])?;
        }
        let mut author = String::new();
        let history = match ins.name.as_str() {
            "env" | "label" => {
                let pairs = words::pairs(&text, esc, &env, &upper)?;
                for (k, v) in &pairs {
                    if ins.name == "env" {
                        let list = cfg["Env"].as_array().cloned().unwrap_or_default();
                        let prefix = format!("{k}=");
                        let mut list: Vec<Value> = list
                            .into_iter()
                            .filter(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)))
                            .collect();
                        list.push(json!(format!("{k}={v}")));
                        cfg["Env"] = Value::Array(list);
                    } else {
                        if !cfg["Labels"].is_object() {
                            cfg["Labels"] = json!({});
                        }
                        cfg["Labels"][k] = json!(v);
                    }
                }
                let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{upper} {}", shown.join(" "))
            }
            "arg" => {
                for (name, value) in self.declared_args(ins, &env)? {
                    stage.args.retain(|(k, _)| *k != name);
                    if let Some(v) = value {
                        stage.args.push((name, v));
                    }
                }
                format!("ARG {text}")
            }
            "maintainer" => {
                author = text.trim().to_string();
                format!("MAINTAINER {author}")
            }
            "cmd" | "entrypoint" => {
                let argv = match &ins.args {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(s) if s.trim().is_empty() => Vec::new(),
                    Args::Shell(s) => {
                        let mut a = stage.shell();
                        a.push(s.clone());
                        a
                    }
                };
                let key = if ins.name == "cmd" {
                    "Cmd"
                } else {
                    "Entrypoint"
                };
                cfg[key] = if argv.is_empty() {
                    Value::Null
                } else {
                    json!(argv)
                };
                if ins.name == "cmd" {
                    stage.cmd_set = true;
                } else if !stage.cmd_set {
                    cfg["Cmd"] = Value::Null;
                }
                format!("{upper} {}", go_list(&argv))
            }
            "expose" => {
                let ports = words::words(&text, esc, &env)?;
                crate::images::changes::apply(cfg, &[format!("EXPOSE {}", ports.join(" "))])?;
                format!("EXPOSE {}", ports.join(" "))
            }
            "user" => {
                let user = words::word(text.trim(), esc, &env)?;
                if user.is_empty() {
                    return Err(Error::InvalidArgument(
                        "USER requires exactly one argument".into(),
                    ));
                }
                cfg["User"] = json!(user);
                format!("USER {user}")
            }
            "volume" => {
                let vols = match &ins.args {
                    Args::Exec(v) => v
                        .iter()
                        .map(|w| words::word(w, esc, &env))
                        .collect::<Result<Vec<_>>>()?,
                    Args::Shell(s) => words::words(s, esc, &env)?,
                };
                if !cfg["Volumes"].is_object() {
                    cfg["Volumes"] = json!({});
                }
                for v in &vols {
                    if v.trim().is_empty() {
                        return Err(Error::InvalidArgument(
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    cfg["Volumes"][v.as_str()] = json!({});
                }
                format!("VOLUME {}", go_list(&vols))
            }
            "stopsignal" => {
                let sig = words::word(text.trim(), esc, &env)?;
                crate::containers::lifecycle::parse_signal(&sig)?;
                cfg["StopSignal"] = json!(sig);
                format!("STOPSIGNAL {sig}")
            }
            "shell" => {
                let Args::Exec(v) = &ins.args else {
                    return Err(Error::InvalidArgument(
                        "SHELL requires the arguments to be in JSON form".into(),
                    ));
                };
                if v.is_empty() {
                    return Err(Error::InvalidArgument(
                        "SHELL requires at least one argument".into(),
                    ));
                }
                cfg["Shell"] = json!(v);
                format!("SHELL {}", go_list(v))
            }
            "healthcheck" => {
                let hc = healthcheck(ins, &stage.shell())?;
                cfg["Healthcheck"] = hc;
                format!(
                    "HEALTHCHECK {}",
                    ins.original
                        .split_once(char::is_whitespace)
                        .map(|x| x.1)
                        .unwrap_or("")
                )
            }
            "onbuild" => {
                let trigger = text.trim();
                let first = trigger
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                match first.as_str() {
                    "ONBUILD" => {
                        return Err(Error::InvalidArgument(
                            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                        ))
                    }
                    "FROM" | "MAINTAINER" => {
                        return Err(Error::InvalidArgument(format!(
                            "{first} isn't allowed as an ONBUILD trigger"
                        )))
                    }
                    "" => {
                        return Err(Error::InvalidArgument(
                            "ONBUILD requires at least one argument".into(),
                        ))
                    }
                    _ => {}
                }
                let mut list = cfg["OnBuild"].as_array().cloned().unwrap_or_default();
                list.push(json!(trigger));
                cfg["OnBuild"] = Value::Array(list);
                format!("ONBUILD {trigger}")
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown instruction: {}",
                    other.to_ascii_uppercase()
                )))
            }
        };
        Ok((history, author))
    }

    /// Looks the step up in the cache; on a hit the stage moves on to the
    /// cached image and " ---> Using cache" is said.
    pub async fn cached(&mut self, stage: &mut Stage, created_by: &str) -> Result<bool> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let key = cache::key(&stage.image.id, created_by);
        let img = match cache::lookup(&self.b.store, &key).await? {
            Some(img) => img,
            None => match self.imported(&key, created_by).await? {
                Some(img) => img,
                None => return Ok(false),
            },
        };
        if !self.opts.cache_from.is_empty() && !self.cache_sources().await?.contains(&img.id) {
            // The classic builder's rule: with --cache-from, only those
            // images' steps count, not whatever this engine built before.
            return Ok(false);
        }
        self.out.cached(&short_id(&img.id));
        stage.config = image_config(&img);
        stage.image = img;
        Ok(true)
    }

    /// A step taken from a `--cache-from` image's inline cache, and
    /// remembered as if built here. A record that cannot be taken (its
    /// layers unreachable) is a miss: the step runs, as in BuildKit.
    async fn imported(&self, key: &str, created_by: &str) -> Result<Option<ImageRow>> {
        let Some(imports) = self.buildkit.as_ref().map(|h| &h.cache_imports) else {
            return Ok(None);
        };
        if imports.is_empty() {
            return Ok(None);
        }
        match imports.take(&self.b.images, key).await {
            Ok(Some(img)) => {
                cache::remember(&self.b.store, key, &img.id, created_by).await?;
                Ok(Some(img))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::warn!(key, error = %e, "taking a step from an imported cache failed; it runs");
                Ok(None)
            }
        }
    }

    /// The `--cache-from` images and every image they were built from
    /// (names that match nothing add nothing).
    async fn cache_sources(&mut self) -> Result<&HashSet<String>> {
        if self.cache_sources.is_none() {
            let mut ids = HashSet::new();
            for name in &self.opts.cache_from {
                let mut next = self.b.images.find(name).await?;
                while let Some(img) = next {
                    if !ids.insert(img.id.clone()) || img.parent.is_empty() {
                        break;
                    }
                    next = self.b.images.find(&img.parent).await?;
                }
            }
            self.cache_sources = Some(ids);
        }
        Ok(self.cache_sources.get_or_insert_with(HashSet::new))
    }

    /// Records a step's new image in the cache and moves the stage on.
    pub async fn advance(
        &mut self,
        stage: &mut Stage,
        img: ImageRow,
        created_by: &str,
    ) -> Result<()> {
        let key = cache::key(&stage.image.id, created_by);
        cache::remember(&self.b.store, &key, &img.id, created_by).await?;
        self.out.say(&format!(" ---> {}\n", short_id(&img.id)));
        stage.config = image_config(&img);
        stage.image = img;
        Ok(())
    }

    async fn finish(&mut self, image: &ImageRow) -> Result<()> {
        let mut unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .collect();
        unused.sort();
        if !unused.is_empty() {
            let list: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.out.say(&format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                list.join(" ")
            ));
        }
        if let Some(p) = self.out.legacy_stream() {
            p.built(&image.id);
        }
        self.out
            .say(&format!("Successfully built {}\n", short_id(&image.id)));
        for t in self.opts.tags.clone() {
            let normalized = t.with_default_tag().normalized();
            self.b.store.set_tag(&normalized, &image.id).await?;
            self.b.images.image_event("tag", &familiar(&normalized));
            self.out
                .say(&format!("Successfully tagged {}\n", familiar(&normalized)));
        }
        if self.out.is_quiet() {
            if let Some(p) = self.out.legacy_stream() {
                p.stream(&format!("{}\n", image.id));
            }
        }
        Ok(())
    }
}

/// Whether BuildKit makes a vertex (and counts a step) for an
/// instruction inside a stage: the ones that change the filesystem.
fn makes_vertex(ins: &Instruction) -> bool {
    matches!(ins.name.as_str(), "run" | "copy" | "add" | "workdir")
}

/// A step as BuildKit names it: the keyword upper-cased, the rest as
/// written; FROM names the image in full (`docker.io/library/busybox`).
fn vertex_text(ins: &Instruction) -> String {
    let original = ins
        .original
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let rest = original
        .split_once(' ')
        .map(|(_, r)| r.to_string())
        .unwrap_or_default();
    if ins.name == "from" {
        let image = rest
            .split_whitespace()
            .find(|w| !w.starts_with("--"))
            .unwrap_or("");
        let full = match Reference::parse(image) {
            Ok(r) => match (&r.tag, &r.digest) {
                (Some(t), _) => format!("{}:{t}", r.repository()),
                (None, Some(d)) => format!("{}@{d}", r.repository()),
                (None, None) => r.repository(),
            },
            Err(_) => image.to_string(),
        };
        return format!("FROM {full}");
    }
    format!("{} {rest}", ins.name.to_ascii_uppercase())
}

#[cfg(test)]
mod stage_tests {
    use super::needed_stages;

    fn st(name: Option<&str>, refs: &[&str]) -> (Option<String>, Vec<String>) {
        (
            name.map(str::to_string),
            refs.iter().map(|r| r.to_string()).collect(),
        )
    }

    #[test]
    fn only_stages_the_target_reaches_are_needed() {
        let stages = [
            st(Some("base"), &["busybox"]),
            st(Some("unused"), &["base"]),
            st(Some("tools"), &["busybox"]),
            st(None, &["base", "tools"]),
        ];
        assert_eq!(needed_stages(&stages), vec![true, false, true, true]);
        let by_index = [
            st(None, &["busybox"]),
            st(None, &["busybox"]),
            st(None, &["busybox", "0"]),
        ];
        assert_eq!(needed_stages(&by_index), vec![true, false, true]);
        let variable = [
            st(Some("a"), &["busybox"]),
            st(None, &["busybox", "${FROM}"]),
        ];
        assert_eq!(needed_stages(&variable), vec![true, true]);
    }
}

/// `["a" "b"]`: how Docker's history prints a command list.
fn go_list(v: &[String]) -> String {
    let quoted: Vec<String> = v
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(" "))
}

pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex[..hex.len().min(12)].to_string()
}

/// The empty image `FROM scratch` starts from.
pub fn scratch() -> ImageRow {
    let config = json!({
        "architecture": crate::images::go_arch(),
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [] },
        "history": [],
    });
    ImageRow {
        id: String::new(),
        config: config.to_string(),
        layers: Vec::new(),
        chains: Vec::new(),
        size: 0,
        created: crate::util::now_rfc3339(),
        manifest: String::new(),
        parent: String::new(),
    }
}

/// Only this machine's platform can be built for (no emulation here).
fn check_platform(p: &str) -> Result<()> {
    let mut parts = p.split('/');
    let os = parts.next().unwrap_or("");
    let arch = parts.next().unwrap_or(crate::images::go_arch());
    if os != "linux" || arch != crate::images::go_arch() {
        return Err(Error::InvalidArgument(format!(
            "platform {p} is not supported here: this engine builds for linux/{} only",
            crate::images::go_arch()
        )));
    }
    Ok(())
}

/// `HEALTHCHECK [--interval=…] CMD …` or `HEALTHCHECK NONE`.
fn healthcheck(ins: &Instruction, shell: &[String]) -> Result<Value> {
    ins.allow_flags(&[
        "interval",
        "timeout",
        "start-period",
        "start-interval",
        "retries",
    ])?;
    let text = ins.text();
    let mut words = text.split_whitespace();
    let kind = words.next().unwrap_or("").to_ascii_uppercase();
    if kind == "NONE" {
        if !ins.flags.is_empty() || words.next().is_some() {
            return Err(Error::InvalidArgument(
                "HEALTHCHECK NONE takes no arguments".into(),
            ));
        }
        return Ok(json!({ "Test": ["NONE"] }));
    }
    if kind != "CMD" {
        return Err(Error::InvalidArgument(format!(
            "Unknown type \"{kind}\" in HEALTHCHECK (try CMD)"
        )));
    }
    let rest = text.trim_start()[3..].trim();
    let test: Vec<String> = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) if rest.starts_with('[') => std::iter::once("CMD".to_string()).chain(v).collect(),
        _ => {
            let _ = shell;
            vec!["CMD-SHELL".into(), rest.to_string()]
        }
    };
    let mut hc = json!({ "Test": test });
    for (flag, key) in [
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ] {
        if let Some(v) = ins.flag(flag) {
            let ns = duration_ns(v)
                .ok_or_else(|| Error::InvalidArgument(format!("time: invalid duration \"{v}\"")))?;
            hc[key] = json!(ns);
        }
    }
    if let Some(r) = ins.flag("retries") {
        let n: i64 = r
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("invalid retries value: {r}")))?;
        if n < 1 {
            return Err(Error::InvalidArgument(
                "--retries must be at least 1".into(),
            ));
        }
        hc["Retries"] = json!(n);
    }
    Ok(hc)
}

/// Go durations as Dockerfiles write them: "30s", "1m30s", "500ms".
fn duration_ns(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Some(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_lists() {
        assert_eq!(duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(duration_ns("500ms"), Some(500_000_000));
        assert_eq!(duration_ns("5"), None);
        assert_eq!(go_list(&["a".into(), "b c".into()]), "[\"a\" \"b c\"]");
    }

    #[test]
    fn plans_cut_at_the_target() {
        let df = super::super::dockerfile::parse(
            "ARG V=1\nFROM busybox AS one\nRUN a\nFROM one AS two\nRUN b\nFROM two\n",
        )
        .unwrap();
        let opts = BuildOptions {
            target: "two".into(),
            ..Default::default()
        };
        let plan = Plan::new(df, &opts).unwrap();
        assert_eq!(plan.stages.len(), 2);
        assert_eq!(plan.total, 4);
        assert_eq!(plan.meta_args.len(), 1);
        let df = super::super::dockerfile::parse("FROM a\n").unwrap();
        let opts = BuildOptions {
            target: "nope".into(),
            ..Default::default()
        };
        assert!(Plan::new(df, &opts).is_err());
        assert!(Plan::new(
            super::super::dockerfile::parse("RUN x\nFROM a\n").unwrap(),
            &BuildOptions::default()
        )
        .is_err());
    }
}
