//! `--change` of `docker import` and `docker commit`: Dockerfile
//! instructions (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL,
//! USER, VOLUME, WORKDIR) applied to an image's container config (the JSON
//! object with Cmd, Env, … as the Docker API spells them).

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

fn bad(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// `["a", "b"]` (JSON form) or `a b` (shell form, run by /bin/sh -c).
fn command(args: &str) -> Value {
    if args.trim_start().starts_with('[') {
        if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(args) {
            if items.iter().all(Value::is_string) {
                return Value::Array(items);
            }
        }
    }
    json!(["/bin/sh", "-c", args])
}

/// `KEY=VALUE KEY2="two words"` or the legacy `KEY VALUE`.
fn pairs(args: &str, what: &str) -> Result<Vec<(String, String)>> {
    let words = split_words(args);
    if words.is_empty() {
        return Err(bad(format!("{what} requires at least one argument")));
    }
    if !words[0].contains('=') {
        let (k, v) = args
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad(format!("{what} requires at least two arguments")))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| bad(format!("{what} names can not be blank: {w}")))
        })
        .collect()
}

/// Splits on blanks, honouring double and single quotes and backslashes.
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                any = true;
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn object<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = config.entry(key.to_string()).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("object")
}

/// Applies every change in order.
pub fn apply(config: &mut Value, changes: &[String]) -> Result<()> {
    if !config.is_object() {
        *config = json!({});
    }
    let cfg = config.as_object_mut().expect("object");
    for change in changes
        .iter()
        .flat_map(|c| c.lines())
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        let (instr, args) = change
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        let args = args.trim();
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => {
                cfg.insert("Cmd".into(), command(args));
            }
            "ENTRYPOINT" => {
                cfg.insert("Entrypoint".into(), command(args));
            }
            "ENV" => {
                for (k, v) in pairs(args, "ENV")? {
                    let env = cfg.entry("Env").or_insert_with(|| json!([]));
                    let list = env
                        .as_array_mut()
                        .ok_or_else(|| bad("Env is not a list".into()))?;
                    let prefix = format!("{k}=");
                    list.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
                    list.push(Value::String(format!("{k}={v}")));
                }
            }
            "LABEL" => {
                for (k, v) in pairs(args, "LABEL")? {
                    object(cfg, "Labels").insert(k, Value::String(v));
                }
            }
            "EXPOSE" => {
                for port in split_words(args) {
                    let port = if port.contains('/') {
                        port.to_lowercase()
                    } else {
                        format!("{port}/tcp")
                    };
                    let (num, proto) = port.split_once('/').unwrap_or((&port, "tcp"));
                    if num.split('-').any(|n| n.parse::<u16>().is_err())
                        || !matches!(proto, "tcp" | "udp" | "sctp")
                    {
                        return Err(bad(format!("invalid containerPort: {num}")));
                    }
                    object(cfg, "ExposedPorts").insert(port.clone(), json!({}));
                }
            }
            "VOLUME" => {
                let vols: Vec<String> = match serde_json::from_str::<Vec<String>>(args) {
                    Ok(v) => v,
                    Err(_) => split_words(args),
                };
                for v in vols {
                    object(cfg, "Volumes").insert(v, json!({}));
                }
            }
            "WORKDIR" => {
                let dir = if args.starts_with('/') {
                    args.to_string()
                } else {
                    format!("/{args}")
                };
                cfg.insert("WorkingDir".into(), Value::String(dir));
            }
            "USER" => {
                cfg.insert("User".into(), Value::String(args.to_string()));
            }
            "STOPSIGNAL" => {
                cfg.insert("StopSignal".into(), Value::String(args.to_string()));
            }
            "ONBUILD" => {
                let list = cfg.entry("OnBuild").or_insert_with(|| json!([]));
                if let Some(l) = list.as_array_mut() {
                    l.push(Value::String(args.to_string()));
                }
            }
            other => return Err(bad(format!("{other} is not a valid change command"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_fill_the_config() {
        let mut c = json!({"Env": ["A=1"]});
        let changes = [
            "CMD [\"sh\", \"-c\", \"echo hi\"]".to_string(),
            "ENV A=2 B=\"two words\"".into(),
            "EXPOSE 80 53/udp".into(),
            "LABEL team=core".into(),
            "WORKDIR /srv".into(),
            "ENTRYPOINT echo".into(),
        ];
        apply(&mut c, &changes).unwrap();
        assert_eq!(c["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(c["Env"], json!(["A=2", "B=two words"]));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Labels"]["team"], "core");
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "echo"]));
        assert!(apply(&mut c, &["RUN rm -rf /".to_string()]).is_err());
        assert!(apply(&mut c, &["EXPOSE nope".to_string()]).is_err());
    }
}
