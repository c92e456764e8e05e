//! The differential harness: the same raw API requests sent to Debian's
//! dockerd (the oracle) and to Berth, their answers normalised and
//! compared the way clients read them: status code, the headers they
//! read, JSON key sets and value types, error texts, stream frames.
//!
//! Scenarios are data (`compat-tests/differential/*.json`, see its README);
//! divergences that are intended are listed, with the reason, in
//! `api-spec/divergences.md` as lines ``- `pattern`: reason``, where a
//! pattern matches a divergence's key (`*` matches anything).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// One request of a scenario, and what to compare of its answer.
#[derive(Debug, Clone)]
pub struct Step {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// `Connection: Upgrade`, `Upgrade: tcp`, as attach and exec start.
    pub hijack: bool,
    /// Written after an upgrade, then the write side is closed.
    pub stdin: Option<Vec<u8>>,
    /// Variables taken from the answer: name → JSON pointer.
    pub save: Vec<(String, String)>,
    /// Paths (patterns) whose values are compared exactly.
    pub values: Vec<String>,
    /// Paths (patterns) left out of the comparison.
    pub ignore: Vec<String>,
    /// Compare the stdcopy frames (stream and payload of each).
    pub frames: bool,
    /// Compare the whole body as text.
    pub text: bool,
    /// Headers whose presence and value are compared.
    pub header_values: Vec<String>,
    /// For bodies of several JSON documents: compare only the last one.
    pub last_document: bool,
    /// False for set-up steps whose answers are not compared.
    pub compare: bool,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub steps: Vec<Step>,
    /// Run after the steps, whatever happened, never compared.
    pub cleanup: Vec<Step>,
}

/// Reads the scenarios of one corpus file: a JSON list of
/// `{"name", "steps": [...], "cleanup": [...]}`.
pub fn load_corpus(path: &Path) -> Vec<Scenario> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value =
        serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let list = doc
        .as_array()
        .unwrap_or_else(|| panic!("{}: not a list", path.display()));
    list.iter()
        .map(|s| {
            let name = s["name"].as_str().expect("scenario name").to_string();
            let steps = |key: &str, compare: bool| -> Vec<Step> {
                s[key]
                    .as_array()
                    .map(|a| a.iter().map(|st| step(&name, st, compare)).collect())
                    .unwrap_or_default()
            };
            Scenario {
                steps: steps("steps", true),
                cleanup: steps("cleanup", false),
                name,
            }
        })
        .collect()
}

fn step(scenario: &str, v: &Value, compare: bool) -> Step {
    let req = match v {
        Value::String(s) => s.as_str(),
        _ => v["req"]
            .as_str()
            .unwrap_or_else(|| panic!("{scenario}: a step needs \"req\"")),
    };
    let (method, path) = req
        .split_once(' ')
        .unwrap_or_else(|| panic!("{scenario}: \"req\" is \"METHOD PATH\": {req}"));
    let strings = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut headers: Vec<(String, String)> = v["headers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(auth) = v.get("auth") {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE.encode(auth.to_string());
        headers.push(("X-Registry-Auth".into(), b64));
    }
    let body = match (v.get("body"), v.get("raw"), v.get("tar")) {
        (Some(b), _, _) => Some(b.to_string().into_bytes()),
        (None, Some(Value::String(r)), _) => Some(r.clone().into_bytes()),
        (None, None, Some(Value::Object(files))) => {
            headers.push(("Content-Type".into(), "application/x-tar".into()));
            Some(tar_of(files))
        }
        _ => None,
    };
    Step {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body,
        hijack: v["hijack"].as_bool().unwrap_or(false),
        stdin: v["stdin"].as_str().map(|s| s.as_bytes().to_vec()),
        save: v["save"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, p)| (k.clone(), p.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        values: strings("values"),
        ignore: strings("ignore"),
        frames: v["frames"].as_bool().unwrap_or(false),
        text: v["text"].as_bool().unwrap_or(false),
        header_values: strings("header_values"),
        last_document: v["last_document"].as_bool().unwrap_or(false),
        compare: compare && v["compare"].as_bool().unwrap_or(true),
    }
}

/// A tar archive of text files (name to content), as a build context or
/// an archive upload: mode 0644, times zero.
fn tar_of(files: &serde_json::Map<String, Value>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let data = content.as_str().unwrap_or_default().as_bytes();
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data)
            .expect("a tar in memory takes any file");
    }
    b.into_inner().expect("a tar in memory finishes")
}

/// What came back for one request.
pub type Exchange = crate::http::Response;

/// Variables saved from earlier answers, per daemon.
pub type Vars = BTreeMap<String, String>;

fn substitute(s: &str, vars: &Vars) -> String {
    let mut out = s.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Sends a step to a daemon's socket and reads the whole answer
/// (`Connection: close`; hijacked streams until the daemon closes them).
pub fn send(socket: &Path, step: &Step, vars: &Vars) -> std::io::Result<Exchange> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let path = substitute(&step.path, vars);
    let body = step
        .body
        .as_ref()
        .map(|b| substitute(&String::from_utf8_lossy(b), vars).into_bytes());
    let mut head = format!("{} {path} HTTP/1.1\r\nHost: docker\r\n", step.method);
    if step.hijack {
        head.push_str("Connection: Upgrade\r\nUpgrade: tcp\r\n");
    } else {
        head.push_str("Connection: close\r\n");
    }
    for (k, v) in &step.headers {
        head.push_str(&format!("{k}: {}\r\n", substitute(v, vars)));
    }
    if let Some(b) = &body {
        if !step
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    } else if step.method != "GET" && step.method != "HEAD" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    if let Some(b) = &body {
        // A daemon may answer (a 400 for a missing parameter) and close
        // before it takes the whole body; its answer is still there to
        // read, and it is what is compared. Whether the write fails first
        // is a race, so a failed write is not the outcome.
        if let Err(e) = s.write_all(b) {
            if !matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) {
                return Err(e);
            }
        }
    }
    // The head, byte by byte, so that no stream byte is taken with it.
    let mut raw_head = Vec::new();
    let mut byte = [0u8; 1];
    while !raw_head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            break;
        }
        raw_head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&raw_head).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if status == 101 {
        if let Some(input) = &step.stdin {
            s.write_all(input)?;
        }
        if step.stdin.is_some() {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
    }
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => return Err(e),
    }
    let mut ex = Exchange {
        status,
        headers,
        body: rest,
    };
    if ex
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        ex.body = crate::http::dechunk(&ex.body).unwrap_or(ex.body);
    }
    Ok(ex)
}

/// A value taken from an answer by JSON pointer, as text.
pub fn pick(ex: &Exchange, pointer: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(&ex.body).ok()?;
    match v.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Strings with what differs between any two daemons by nature (ids,
/// digests, times, this run's variables) replaced by placeholders.
pub struct Normaliser {
    vars: Vec<(String, String)>,
    hex64: regex::Regex,
    hex12: regex::Regex,
    time: regex::Regex,
}

impl Normaliser {
    pub fn new(vars: &Vars) -> Normaliser {
        let mut pairs: Vec<(String, String)> = vars
            .iter()
            .filter(|(_, v)| v.len() >= 4)
            .flat_map(|(k, v)| {
                let mut out = vec![(v.clone(), format!("{{{k}}}"))];
                if v.len() == 64 {
                    out.push((v[..12].to_string(), format!("{{{k}:short}}")));
                }
                out
            })
            .collect();
        // Longest first, so an id is replaced before its short form.
        pairs.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        Normaliser {
            vars: pairs,
            hex64: regex::Regex::new("[0-9a-f]{64}").unwrap(),
            hex12: regex::Regex::new(r"\b[0-9a-f]{12}\b").unwrap(),
            time: regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
                .unwrap(),
        }
    }

    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (v, k) in &self.vars {
            out = out.replace(v.as_str(), k);
        }
        let out = self.hex64.replace_all(&out, "<hex64>");
        let out = self.hex12.replace_all(&out, "<hex12>");
        self.time.replace_all(&out, "<time>").into_owned()
    }
}

/// One difference between the two answers. `key` is what
/// api-spec/divergences.md patterns match: `<scenario>#<step> <aspect> <path>`.
#[derive(Debug, Clone)]
pub struct Divergence {
    pub key: String,
    pub detail: String,
}

/// Compares Berth's answer with dockerd's for one step.
pub fn compare(
    scenario: &str,
    n: usize,
    step: &Step,
    (oracle, oracle_vars): (&Exchange, &Vars),
    (berth, berth_vars): (&Exchange, &Vars),
) -> Vec<Divergence> {
    let mut out = Vec::new();
    let mut add = |aspect: &str, path: &str, detail: String| {
        out.push(Divergence {
            key: format!("{scenario}#{n} {aspect} {path}")
                .trim_end()
                .to_string(),
            detail,
        })
    };
    let on = Normaliser::new(oracle_vars);
    let bn = Normaliser::new(berth_vars);
    if oracle.status != berth.status {
        add(
            "status",
            "",
            format!("dockerd {} berth {}", oracle.status, berth.status),
        );
    }
    let mut header_names = vec![
        "Content-Type".to_string(),
        "Api-Version".into(),
        "Ostype".into(),
    ];
    header_names.extend(step.header_values.iter().cloned());
    for h in header_names {
        let (a, b) = (oracle.header(&h), berth.header(&h));
        let differs = match h.as_str() {
            // Which version each serves is theirs to say.
            "Api-Version" => a.is_some() != b.is_some(),
            _ => a != b,
        };
        if differs {
            add("header", &h, format!("dockerd {a:?} berth {b:?}"));
        }
    }
    // Go's json.Encoder ends each document with a newline; clients that
    // split a body on lines, or compare bytes, see the difference.
    let is_json = |e: &Exchange| {
        e.header("Content-Type")
            .is_some_and(|t| t.starts_with("application/json"))
            && !e.body.is_empty()
    };
    if is_json(oracle) && is_json(berth) {
        let (a, b) = (oracle.body.ends_with(b"\n"), berth.body.ends_with(b"\n"));
        if a != b {
            add(
                "newline",
                "",
                format!("dockerd ends with a newline: {a}, berth: {b}"),
            );
        }
    }
    let ignored = |path: &str| step.ignore.iter().any(|p| glob(p, path));
    let exact = |path: &str| step.values.iter().any(|p| glob(p, path));
    if step.text {
        let (a, b) = (
            on.text(&String::from_utf8_lossy(&oracle.body)),
            bn.text(&String::from_utf8_lossy(&berth.body)),
        );
        if a != b {
            add("text", "", format!("dockerd {a:?}\n  berth {b:?}"));
        }
        return out;
    }
    if step.frames {
        let (a, b) = (frames(&oracle.body), frames(&berth.body));
        // Per stream, in order: which of stdout and stderr a daemon reads
        // first is a race in either daemon, the order within one is not.
        let norm = |f: Vec<(u8, Vec<u8>)>, n: &Normaliser| -> Vec<(u8, String)> {
            let mut f: Vec<(u8, String)> = f
                .into_iter()
                .map(|(s, p)| (s, n.text(&String::from_utf8_lossy(&p))))
                .collect();
            f.sort_by_key(|(s, _)| *s);
            f
        };
        let (a, b) = (norm(a, &on), norm(b, &bn));
        if a != b {
            add("frames", "", format!("dockerd {a:?}\n  berth {b:?}"));
        }
        return out;
    }
    let docs = |body: &[u8]| -> Option<Vec<Value>> {
        let docs: Result<Vec<Value>, _> = serde_json::Deserializer::from_slice(body)
            .into_iter::<Value>()
            .collect();
        docs.ok().filter(|d| !d.is_empty())
    };
    match (docs(&oracle.body), docs(&berth.body)) {
        (Some(a), Some(b)) => {
            let (a, b) = if step.last_document || a.len() > 1 || b.len() > 1 {
                (a.last().cloned().unwrap(), b.last().cloned().unwrap())
            } else {
                (a[0].clone(), b[0].clone())
            };
            let error = oracle.status >= 400;
            shape(
                &a,
                &b,
                "",
                &on,
                &bn,
                &ignored,
                &|p| exact(p) || (error && p == "/message"),
                &mut add,
            );
        }
        (None, None) => {
            if oracle.body.is_empty() != berth.body.is_empty() {
                add(
                    "body",
                    "",
                    format!(
                        "dockerd {:?} berth {:?}",
                        String::from_utf8_lossy(&oracle.body),
                        String::from_utf8_lossy(&berth.body)
                    ),
                );
            }
        }
        (a, _) => add(
            "body-kind",
            "",
            format!(
                "dockerd {} berth {}: dockerd {:?} berth {:?}",
                if a.is_some() { "JSON" } else { "not JSON" },
                if a.is_some() { "not JSON" } else { "JSON" },
                truncate(&oracle.body),
                truncate(&berth.body)
            ),
        ),
    }
    out
}

fn truncate(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.chars().take(300).collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Key sets and value types, recursively; exact values where asked.
#[allow(clippy::too_many_arguments)]
fn shape(
    a: &Value,
    b: &Value,
    path: &str,
    on: &Normaliser,
    bn: &Normaliser,
    ignored: &dyn Fn(&str) -> bool,
    exact: &dyn Fn(&str) -> bool,
    add: &mut dyn FnMut(&str, &str, String),
) {
    if ignored(path) {
        return;
    }
    if kind(a) != kind(b) {
        add(
            "type",
            path,
            format!(
                "dockerd {} {} berth {} {}",
                kind(a),
                short(a),
                kind(b),
                short(b)
            ),
        );
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = format!("{path}/{}", on.text(k));
                match y.get(k).or_else(|| {
                    // Keys that are data (ids) differ by nature: match them
                    // normalised.
                    y.iter()
                        .find(|(yk, _)| bn.text(yk) == on.text(k))
                        .map(|(_, v)| v)
                }) {
                    Some(vb) => shape(va, vb, &p, on, bn, ignored, exact, add),
                    None if !ignored(&p) => {
                        add("missing-key", &p, format!("dockerd has {}", short(va)))
                    }
                    None => {}
                }
            }
            for (k, vb) in y {
                let p = format!("{path}/{}", bn.text(k));
                let known = x.contains_key(k) || x.keys().any(|xk| on.text(xk) == bn.text(k));
                if !known && !ignored(&p) {
                    add("extra-key", &p, format!("berth has {}", short(vb)));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() && !ignored(&format!("{path}/#")) {
                add(
                    "length",
                    path,
                    format!("dockerd {} berth {}", x.len(), y.len()),
                );
            }
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                shape(va, vb, &format!("{path}/{i}"), on, bn, ignored, exact, add);
            }
        }
        _ => {
            if exact(path) {
                let (sa, sb) = (scalar(a, on), scalar(b, bn));
                if sa != sb {
                    add("value", path, format!("dockerd {sa:?} berth {sb:?}"));
                }
            }
        }
    }
}

fn scalar(v: &Value, n: &Normaliser) -> String {
    match v {
        Value::String(s) => n.text(s),
        other => other.to_string(),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(117).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s
    }
}

/// stdcopy frames (stream, payload); a body that is not framed is one
/// frame of stream 255.
pub fn frames(body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 8 && rest[0] <= 2 && rest[1..4] == [0, 0, 0] {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        if rest.len() < 8 + len {
            break;
        }
        out.push((rest[0], rest[8..8 + len].to_vec()));
        rest = &rest[8 + len..];
    }
    if !rest.is_empty() {
        out.push((255, rest.to_vec()));
    }
    out
}

/// `*` matches any run of characters, everything else itself.
pub fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            let Some(rest) = s.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|i| rest.is_char_boundary(*i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

/// The patterns of api-spec/divergences.md: lines ``- `pattern`: reason``.
pub fn listed_divergences(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split_once('`').map(|(p, _)| p.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_runs() {
        assert!(glob("a#* type /X/*", "a#3 type /X/Y/Z"));
        assert!(!glob("a#* type /X", "a#3 type /X/Y"));
        assert!(glob("*", ""));
    }

    #[test]
    fn frames_split_stdcopy() {
        let mut b = vec![1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i'];
        b.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 1, b'!']);
        assert_eq!(frames(&b), vec![(1, b"hi".to_vec()), (2, b"!".to_vec())]);
        assert_eq!(frames(b"raw"), vec![(255, b"raw".to_vec())]);
    }

    #[test]
    fn normaliser_replaces_ids_and_times() {
        let mut vars = Vars::new();
        let id = "a".repeat(64);
        vars.insert("c".into(), id.clone());
        let n = Normaliser::new(&vars);
        assert_eq!(
            n.text(&format!("{id} {} 2024-01-02T03:04:05.123Z", &id[..12])),
            "{c} {c:short} <time>"
        );
    }
}
