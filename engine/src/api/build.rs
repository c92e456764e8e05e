//! `POST /build` (a tar context in, JSON messages out: the legacy builder,
//! or with `version=2` a BuildKit build, see `crate::buildkit::build_api`)
//! and `POST /build/prune`.

use std::collections::{BTreeMap, HashMap};

use super::shape::Json;
use axum::body::Body;
use axum::extract::{Query as AxQuery, State as AxState};
use axum::response::{IntoResponse, Response};

use super::images::{body_to_file, progress_response};
use super::query::{flag, Query};
use super::State;
use crate::build::cache::{CacheFilter, PrunePolicy};
use crate::build::BuildOptions;
use crate::buildkit::build_api::ApiBuild;
use crate::buildkit::export::Exporter;
use crate::error::{Error, Result};
use crate::images::reference::Reference;

/// A JSON-object query parameter (`buildargs`, `labels`); empty is none.
fn json_param<T: serde::de::DeserializeOwned + Default>(q: &Query, key: &str) -> Result<T> {
    match q.get(key).filter(|s| !s.is_empty()) {
        None => Ok(T::default()),
        Some(s) => crate::go_json::from_slice(s.as_bytes())
            .map_err(|e| Error::InvalidArgument(format!("invalid {key} value {s:?}: {e}"))),
    }
}

fn options(pairs: &[(String, String)]) -> Result<BuildOptions> {
    let q: Query = pairs.iter().cloned().collect();
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(Error::InvalidArgument(
            "remote build contexts are not supported: send the context as a tar".into(),
        ));
    }
    let mut tags = Vec::new();
    for (k, v) in pairs {
        if k == "t" && !v.is_empty() {
            // The parser's words; a 400 as the API spec says (dockerd 20.10
            // answered 500, see api-spec/divergences.md).
            let r = Reference::parse(v)?;
            if r.digest.is_some() {
                return Err(Error::InvalidArgument(format!(
                    "invalid tag {v}: a tag cannot carry a digest"
                )));
            }
            tags.push(r);
        }
    }
    let build_args: HashMap<String, Option<String>> = json_param(&q, "buildargs")?;
    let labels: BTreeMap<String, String> = json_param(&q, "labels")?;
    // Checked where the step's container is made (an unknown network is
    // a failed step, as in dockerd).
    let network_mode = q.get("networkmode").cloned().unwrap_or_default();
    Ok(BuildOptions {
        tags,
        dockerfile: q.get("dockerfile").cloned().unwrap_or_default(),
        build_args,
        labels,
        target: q.get("target").cloned().unwrap_or_default(),
        no_cache: flag(&q, "nocache"),
        pull: flag(&q, "pull"),
        // Docker's default is rm=true; the CLI always sends it.
        rm: q.get("rm").is_none_or(|_| flag(&q, "rm")),
        force_rm: flag(&q, "forcerm"),
        quiet: flag(&q, "q"),
        network_mode,
        // Every value counts (docker-py repeats the key; the CLI joins
        // the hosts with commas).
        extra_hosts: pairs
            .iter()
            .filter(|(k, _)| k == "extrahosts")
            .flat_map(|(_, v)| v.split(','))
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect(),
        cache_from: json_param::<Option<Vec<String>>>(&q, "cachefrom")?.unwrap_or_default(),
        platform: q.get("platform").cloned().unwrap_or_default(),
        auth: Default::default(),
        skip_unused_stages: false,
    })
}

pub async fn build(
    AxState(engine): AxState<State>,
    AxQuery(pairs): AxQuery<Vec<(String, String)>>,
    body: Body,
) -> Result<Response> {
    let opts = options(&pairs)?;
    let q: Query = pairs.iter().cloned().collect();
    let buildkit = match q.get("version").map(String::as_str) {
        None | Some("") | Some("1") => None,
        Some("2") => Some(api_build_request(&pairs, &q)?),
        Some(v) => {
            return Err(Error::InvalidArgument(format!(
                "unsupported builder version {v}"
            )))
        }
    };
    // The context goes to disk as it arrives: it can be large.
    let path = body_to_file(&engine, body).await?;
    let progress = match buildkit {
        None => engine.builder.start(opts, path).await?,
        Some(mut req) => {
            req.opts = opts;
            req.context = path;
            engine.buildkit.api_build(req)
        }
    };
    Ok(progress_response(progress))
}

/// `outputs` as the API takes it: `[{"type":"tar","attrs":{…}}]` (keys
/// in any case, as Go's decoder matches them).
#[derive(serde::Deserialize)]
struct OutputParam {
    r#type: String,
    #[serde(default)]
    attrs: HashMap<String, String>,
}

/// What `version=2` adds to the legacy parameters (filled in by the caller
/// with the options and the context file).
fn api_build_request(pairs: &[(String, String)], q: &Query) -> Result<ApiBuild> {
    let outputs: Vec<OutputParam> =
        json_param::<Option<Vec<OutputParam>>>(q, "outputs")?.unwrap_or_default();
    Ok(ApiBuild {
        opts: BuildOptions::default(),
        tags: pairs
            .iter()
            .filter(|(k, v)| k == "t" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect(),
        outputs: outputs
            .into_iter()
            .map(|o| Exporter {
                kind: o.r#type,
                attrs: o.attrs,
            })
            .collect(),
        session: q.get("session").cloned().unwrap_or_default(),
        build_id: q
            .get("buildid")
            .filter(|id| !id.is_empty())
            .cloned()
            .unwrap_or_else(crate::util::random_id),
        context: Default::default(),
    })
}

/// `POST /build/prune`: forgets the build cache and removes the images
/// only it kept (untagged, unused build steps).
pub async fn prune(
    AxState(engine): AxState<State>,
    AxQuery(q): AxQuery<Query>,
) -> Result<Response> {
    let filters = crate::filters::Filters::parse(q.get("filters").map(String::as_str))?;
    let bad = |what: String| Error::InvalidArgument(format!("failed to prune build cache: {what}"));
    // The keys dockerd's BuildKit takes.
    filters
        .only(&[
            "until",
            "unused-for",
            "id",
            "parent",
            "parents",
            "type",
            "description",
            "inuse",
            "shared",
            "private",
        ])
        .map_err(|e| bad(e.to_string()))?;
    let mut policy = PrunePolicy::default();
    for key in filters.keys() {
        let values = filters.get(&key);
        let [value] = values.as_slice() else {
            return Err(bad("filters expect only one value".into()));
        };
        if key == "until" || key == "unused-for" {
            policy.unused_since = Some(
                crate::util::parse_until(value)
                    .ok_or_else(|| bad(format!("invalid filter '{key}={value}'")))?,
            );
        } else {
            // As dockerd hands them to BuildKit: ids by prefix, the rest equal.
            let op = if key == "id" { "~=" } else { "==" };
            policy
                .filters
                .extend(CacheFilter::parse_list(&format!("{key}{op}{value}"))?);
        }
    }
    let bytes = |name: &str| -> Result<u64> {
        match q.get(name).filter(|v| !v.is_empty()) {
            None => Ok(0),
            Some(v) => v
                .parse::<i64>()
                .map(|n| n.max(0) as u64)
                .map_err(|_| Error::InvalidArgument(format!("invalid {name} value {v:?}"))),
        }
    };
    // `keep-storage` is the older name of `reserved-space`.
    policy.reserved_space = bytes("reserved-space")?.max(bytes("keep-storage")?);
    policy.max_used_space = bytes("max-used-space")?;
    policy.min_free_space = bytes("min-free-space")?;
    let (records, freed) = engine.builder.prune(&policy).await?;
    let deleted: Vec<String> = records.into_iter().filter_map(|r| r.id).collect();
    Ok(Json(serde_json::json!({
        "CachesDeleted": super::shape::nil_if_empty(&deleted),
        "SpaceReclaimed": freed,
    }))
    .into_response())
}
