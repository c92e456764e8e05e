//! The `tag` log option: a Go template over the container's logging facts
//! (`{{.ID}}`, `{{.FullID}}`, `{{.Name}}`, `{{.ImageID}}`,
//! `{{.ImageFullID}}`, `{{.ImageName}}`, `{{.DaemonName}}`) and the
//! functions dockerd gives templates (upper, lower, title, truncate, split,
//! pad, json), filled in when the container starts as dockerd fills it.
//! The default is `{{.ID}}`.
//!
//! Written by hand: a Go template engine for Rust would bring a whole
//! language for one line, and the errors must read as Go's do.

use berth_proto::shim::LOGGING_FAILED;

use crate::error::{Error, Result};

/// What a tag template can name.
pub struct Facts<'a> {
    /// The container's full id.
    pub id: &'a str,
    /// Its name, without the leading slash.
    pub name: &'a str,
    /// The image id as stored ("sha256:…").
    pub image_id: &'a str,
    /// The image as the user named it.
    pub image_name: &'a str,
}

/// A value while a template runs: Go's string or []string.
enum Value {
    Text(String),
    List(Vec<String>),
    Number(usize),
}

impl Value {
    /// How Go's text/template prints it.
    fn printed(self) -> String {
        match self {
            Value::Text(s) => s,
            Value::List(l) => format!("[{}]", l.join(" ")),
            Value::Number(n) => n.to_string(),
        }
    }
}

/// The tag for `template` (empty: the default, `{{.ID}}`). Errors are Go's.
pub fn render(template: &str, facts: &Facts<'_>) -> Result<String> {
    let template = if template.is_empty() {
        "{{.ID}}"
    } else {
        template
    };
    let mut out = String::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let body_start = open + 2;
        let close = rest[body_start..].find("}}").ok_or_else(|| {
            template_error(format!(
                "log-tag:{}: unclosed action",
                line_of(template, offset)
            ))
        })?;
        let body = &rest[body_start..body_start + close];
        let at = offset + body_start + (body.len() - body.trim_start().len());
        out.push_str(&eval(body.trim(), template, at, facts)?.printed());
        let consumed = body_start + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

fn template_error(detail: String) -> Error {
    Error::Internal(format!("{LOGGING_FAILED}: template: {detail}"))
}

fn line_of(template: &str, at: usize) -> usize {
    template[..at].matches('\n').count() + 1
}

/// One action's pipeline: a field, or a function and its arguments.
fn eval(body: &str, template: &str, at: usize, facts: &Facts<'_>) -> Result<Value> {
    let words = split_words(body);
    let Some((first, args)) = words.split_first() else {
        return Err(template_error(format!(
            "log-tag:{}: missing value for command",
            line_of(template, at)
        )));
    };
    if first.starts_with('.') {
        return field(first, template, at, facts).map(Value::Text);
    }
    let mut values = Vec::new();
    for a in args {
        let arg_at = at + body.find(a.as_str()).unwrap_or(0);
        values.push(argument(a, template, arg_at, facts)?);
    }
    let text = |i: usize| -> Result<String> {
        match values.get(i) {
            Some(Value::Text(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(wrong_args(first, template, at)),
        }
    };
    let number = |i: usize| -> Result<usize> {
        match values.get(i) {
            Some(Value::Number(n)) => Ok(*n),
            _ => Err(wrong_args(first, template, at)),
        }
    };
    let want = |n: usize| {
        if values.len() == n {
            Ok(())
        } else {
            Err(wrong_args(first, template, at))
        }
    };
    match first.as_str() {
        "upper" => want(1).and_then(|_| Ok(Value::Text(text(0)?.to_uppercase()))),
        "lower" => want(1).and_then(|_| Ok(Value::Text(text(0)?.to_lowercase()))),
        "title" => want(1).and_then(|_| Ok(Value::Text(title(&text(0)?)))),
        "truncate" => want(2).and_then(|_| {
            let s = text(0)?;
            let n = number(1)?;
            Ok(Value::Text(s.chars().take(n).collect()))
        }),
        "split" => want(2).and_then(|_| {
            Ok(Value::List(
                text(0)?
                    .split(text(1)?.as_str())
                    .map(String::from)
                    .collect(),
            ))
        }),
        "pad" => want(3).and_then(|_| {
            let s = text(0)?;
            Ok(Value::Text(format!(
                "{}{s}{}",
                " ".repeat(number(1)?),
                " ".repeat(number(2)?)
            )))
        }),
        "json" => want(1).and_then(|_| {
            Ok(Value::Text(
                serde_json::to_string(&text(0)?).map_err(Error::internal)?,
            ))
        }),
        other => Err(template_error(format!(
            "log-tag:{}: function {other:?} not defined",
            line_of(template, at)
        ))),
    }
}

fn wrong_args(function: &str, template: &str, at: usize) -> Error {
    template_error(format!(
        "log-tag:{}:{}: executing \"log-tag\" at <{function}>: wrong number or type of arguments",
        line_of(template, at),
        column(template, at)
    ))
}

fn column(template: &str, at: usize) -> usize {
    at - template[..at].rfind('\n').map_or(0, |n| n + 1)
}

fn argument(word: &str, template: &str, at: usize, facts: &Facts<'_>) -> Result<Value> {
    if word.starts_with('.') {
        return field(word, template, at, facts).map(Value::Text);
    }
    if let Some(quoted) = word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        return Ok(Value::Text(quoted.replace("\\\"", "\"")));
    }
    if let Ok(n) = word.parse::<usize>() {
        return Ok(Value::Number(n));
    }
    Err(template_error(format!(
        "log-tag:{}: function {word:?} not defined",
        line_of(template, at)
    )))
}

/// A field of dockerd's logger.Info (its methods of the same names).
fn field(word: &str, template: &str, at: usize, facts: &Facts<'_>) -> Result<String> {
    let short = |s: &str| s.chars().take(12).collect::<String>();
    Ok(match &word[1..] {
        "ID" => short(facts.id),
        "FullID" => facts.id.to_string(),
        "Name" => facts.name.trim_start_matches('/').to_string(),
        // dockerd cuts the id with its "sha256:" prefix: "sha256:83622".
        "ImageID" => short(facts.image_id),
        "ImageFullID" => facts.image_id.to_string(),
        "ImageName" => facts.image_name.to_string(),
        // Templates written for dockerd keep reading as they did.
        "DaemonName" => "docker".to_string(),
        other => {
            return Err(template_error(format!(
                "log-tag:{}:{}: executing \"log-tag\" at <{word}>: can't evaluate field {other} in type *logger.Info",
                line_of(template, at),
                column(template, at)
            )))
        }
    })
}

/// Words of an action, a quoted string being one word.
fn split_words(body: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            word.push(chars.next().unwrap_or('"'));
            let mut escaped = false;
            for c in chars.by_ref() {
                word.push(c);
                if c == '"' && !escaped {
                    break;
                }
                escaped = c == '\\' && !escaped;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
    words
}

/// Go's strings.Title: the first letter of each word in capitals.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts<'static> {
        Facts {
            id: "c9cd99c00cefd0564996dd431ab37a57300d8b3e527793c149a302179ce4edf8",
            name: "/abc",
            image_id: "sha256:83622e9566cff5dc309aa9dbcd1ca2d4b8a1264a07c965ffd6e5fbf8ec8adb14",
            image_name: "busybox",
        }
    }

    /// The tags dockerd 20.10 sent for these templates.
    #[test]
    fn templates_fill_in_as_on_dockerd() {
        let f = facts();
        assert_eq!(render("", &f).unwrap(), "c9cd99c00cef");
        assert_eq!(
            render("{{.Name}}/{{.ImageName}}/{{.ID}}", &f).unwrap(),
            "abc/busybox/c9cd99c00cef"
        );
        assert_eq!(
            render("{{.ImageID}}|{{.DaemonName}}", &f).unwrap(),
            "sha256:83622|docker"
        );
        assert_eq!(
            render(
                "{{upper .Name}}-{{split .Name \"x\"}}-{{truncate .ID 4}}",
                &f
            )
            .unwrap(),
            "ABC-[abc]-c9cd"
        );
    }

    #[test]
    fn errors_read_as_gos() {
        let f = facts();
        assert_eq!(
            render("{{.Bogus}}", &f).unwrap_err().to_string(),
            "failed to initialize logging driver: template: log-tag:1:2: executing \"log-tag\" at <.Bogus>: can't evaluate field Bogus in type *logger.Info"
        );
        assert_eq!(
            render("x {{nope .Name}}", &f).unwrap_err().to_string(),
            "failed to initialize logging driver: template: log-tag:1: function \"nope\" not defined"
        );
    }
}
