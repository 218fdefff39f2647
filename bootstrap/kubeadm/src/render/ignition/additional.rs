//! `spec.ignition.containerLinuxConfig.additionalConfig` as an Ignition v3 fragment. Two
//! formats are accepted:
//! - an Ignition 3.x JSON config (a JSON object with `ignition.version` `3.*`), taken as is;
//! - the Container Linux Config YAML subset CABPK users write there: `storage.files[]`
//!   (`path`, `filesystem` (ignored: v3 has one root), `mode`, `contents.inline`,
//!   `contents.remote.url`, `user`/`group`, `overwrite`, `append`), `storage.directories[]`,
//!   `storage.links[]`, `systemd.units[]` (`name`, `enable`/`enabled`, `mask`, `contents`,
//!   `dropins[]`) and `passwd.users[]`. Any other key is an error naming it: a silently
//!   dropped key would be lost input.
//!
//! For a spec 2.3.0 document the same subset comes out in 2.x shape (`filesystem: root`,
//! `contents.verification`, `append: true`, the transpiler's default modes), or an Ignition
//! 2.x JSON config is taken as is.

use serde_json::{Map, Value, json};

use super::{dataurl, v2};

/// The shape of the fragment: the document's spec major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    V2,
    V3,
}

impl Spec {
    fn major(self) -> &'static str {
        match self {
            Spec::V2 => "2.",
            Spec::V3 => "3.",
        }
    }
}

/// The fragment in v3 shape (no `ignition` section), or a message naming the problem.
pub fn parse(text: &str) -> Result<Value, String> {
    parse_as(text, Spec::V3)
}

/// The fragment in 2.x shape, for a spec 2.3.0 document.
pub fn parse_v2(text: &str) -> Result<Value, String> {
    parse_as(text, Spec::V2)
}

fn parse_as(text: &str, spec: Spec) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    if let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(text) {
        let version = o.get("ignition").and_then(|i| i.get("version")).and_then(Value::as_str);
        return match version {
            Some(v) if v.starts_with(spec.major()) => {
                o.remove("ignition");
                Ok(Value::Object(o))
            }
            _ => Err(format!(
                "an Ignition JSON additionalConfig needs ignition.version {}x, like the document",
                spec.major()
            )),
        };
    }
    let clc: Value = serde_saphyr::from_str(&octal_modes(text))
        .map_err(|e| format!("not JSON and not Container Linux Config YAML: {e}"))?;
    convert(&clc, spec)
}

/// CLC is read by Go's yaml.v2 (YAML 1.1), where `mode: 0644` is octal; a YAML 1.2 parser
/// reads it as decimal 644. Such values are rewritten to their decimal form first.
fn octal_modes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let rewritten = body.split_once("mode:").and_then(|(head, value)| {
            let key_only = head.trim_start().trim_start_matches('-').trim().is_empty();
            let v = value.trim();
            let digits = v
                .strip_prefix("0o")
                .or_else(|| v.strip_prefix('0'))
                .filter(|d| !d.is_empty())?;
            let m = u32::from_str_radix(digits, 8).ok().filter(|_| key_only)?;
            Some(format!("{head}mode: {m}"))
        });
        match rewritten {
            Some(r) => {
                out.push_str(&r);
                out.push_str(&line[body.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

fn obj<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| format!("{at}: expected a mapping"))
}

fn list<'a>(v: &'a Value, at: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array().ok_or_else(|| format!("{at}: expected a list"))
}

/// Fails naming the first key outside `allowed`.
fn only(m: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "{at}.{k} is not supported in additionalConfig (supported: {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn convert(clc: &Value, spec: Spec) -> Result<Value, String> {
    let top = obj(clc, "additionalConfig")?;
    only(top, &["storage", "systemd", "passwd"], "additionalConfig")?;
    let mut out = json!({});
    if let Some(s) = top.get("storage") {
        let s = obj(s, "storage")?;
        only(s, &["files", "directories", "links"], "storage")?;
        for (k, conv) in [
            ("files", file as fn(&Value, &str, Spec) -> _),
            ("directories", directory),
            ("links", link),
        ] {
            if let Some(l) = s.get(k) {
                let at = format!("storage.{k}[]");
                out["storage"][k] = Value::Array(
                    list(l, &at)?
                        .iter()
                        .map(|e| conv(e, &at, spec))
                        .collect::<Result<_, _>>()?,
                );
            }
        }
    }
    if let Some(s) = top.get("systemd") {
        let s = obj(s, "systemd")?;
        only(s, &["units"], "systemd")?;
        if let Some(l) = s.get("units") {
            out["systemd"]["units"] = Value::Array(
                list(l, "systemd.units[]")?
                    .iter()
                    .map(|u| unit(u, spec))
                    .collect::<Result<_, _>>()?,
            );
        }
    }
    if let Some(p) = top.get("passwd") {
        let p = obj(p, "passwd")?;
        only(p, &["users"], "passwd")?;
        if let Some(l) = p.get("users") {
            out["passwd"]["users"] =
                Value::Array(list(l, "passwd.users[]")?.iter().map(user).collect::<Result<_, _>>()?);
        }
    }
    Ok(out)
}

/// Copies the listed keys unchanged.
fn copy(from: &Map<String, Value>, to: &mut Value, keys: &[&str]) {
    for k in keys {
        if let Some(v) = from.get(*k) {
            to[*k] = v.clone();
        }
    }
}

/// CLC `user: {id|name}` / `group: {...}` have the v3 shape already. In 2.x every node names
/// its filesystem, and the transpiler gives files 0644 and directories 0755 when no mode is set.
fn node(m: &Map<String, Value>, at: &str, spec: Spec, default_mode: u64) -> Result<Value, String> {
    let path = m
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}: path is required"))?;
    let mut out = json!({"path": path});
    if spec == Spec::V2 {
        out["filesystem"] = m.get("filesystem").cloned().unwrap_or_else(|| json!("root"));
        out["mode"] = json!(default_mode);
    }
    copy(m, &mut out, &["user", "group", "overwrite"]);
    if let Some(mode) = m.get("mode") {
        // YAML integers may arrive as floats (`420.0`); Ignition wants an integer.
        let n = mode
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
            .ok_or_else(|| format!("{at}: mode must be a number"))?;
        out["mode"] = json!(n as u64);
    }
    Ok(out)
}

fn file(v: &Value, at: &str, spec: Spec) -> Result<Value, String> {
    let m = obj(v, at)?;
    only(
        m,
        &[
            "path",
            "filesystem",
            "mode",
            "contents",
            "user",
            "group",
            "overwrite",
            "append",
        ],
        at,
    )?;
    let mut out = node(m, at, spec, 0o644)?;
    let Some(c) = m.get("contents") else { return Ok(out) };
    let c = obj(c, &format!("{at}.contents"))?;
    only(c, &["inline", "remote"], &format!("{at}.contents"))?;
    let mut contents = match (c.get("inline").and_then(Value::as_str), c.get("remote"), spec) {
        (Some(text), _, Spec::V3) => dataurl::contents(text.as_bytes()),
        (Some(text), _, Spec::V2) => v2::source(text.as_bytes()),
        (None, Some(r), _) => {
            let r = obj(r, &format!("{at}.contents.remote"))?;
            only(r, &["url"], &format!("{at}.contents.remote"))?;
            json!({"source": r.get("url").cloned().unwrap_or_default()})
        }
        (None, None, _) => json!({}),
    };
    if spec == Spec::V2 {
        contents["verification"] = json!({});
    }
    let append = m.get("append").and_then(Value::as_bool) == Some(true);
    match spec {
        Spec::V3 if append => out["append"] = json!([contents]),
        Spec::V2 if append => {
            out["append"] = json!(true);
            out["contents"] = contents;
        }
        _ => out["contents"] = contents,
    }
    Ok(out)
}

fn directory(v: &Value, at: &str, spec: Spec) -> Result<Value, String> {
    let m = obj(v, at)?;
    only(m, &["path", "filesystem", "mode", "user", "group", "overwrite"], at)?;
    node(m, at, spec, 0o755)
}

fn link(v: &Value, at: &str, spec: Spec) -> Result<Value, String> {
    let m = obj(v, at)?;
    only(
        m,
        &["path", "filesystem", "target", "hard", "user", "group", "overwrite"],
        at,
    )?;
    let mut out = node(m, at, spec, 0)?;
    if let Some(o) = out.as_object_mut() {
        // Links have no mode.
        o.remove("mode");
    }
    copy(m, &mut out, &["target", "hard"]);
    Ok(out)
}

/// CLC's deprecated `enable` survives in 2.x; 3.x knows only `enabled`.
fn unit(v: &Value, spec: Spec) -> Result<Value, String> {
    let at = "systemd.units[]";
    let m = obj(v, at)?;
    only(m, &["name", "enable", "enabled", "mask", "contents", "dropins"], at)?;
    let mut out = json!({});
    copy(m, &mut out, &["name", "enabled", "mask", "contents"]);
    if let Some(e) = m.get("enable") {
        let key = if spec == Spec::V2 { "enable" } else { "enabled" };
        out[key] = e.clone();
    }
    if let Some(d) = m.get("dropins") {
        for x in list(d, "systemd.units[].dropins")? {
            only(
                obj(x, "systemd.units[].dropins[]")?,
                &["name", "contents"],
                "systemd.units[].dropins[]",
            )?;
        }
        out["dropins"] = d.clone();
    }
    Ok(out)
}

/// CLC spells user fields in snake_case; Ignition in camelCase.
fn user(v: &Value) -> Result<Value, String> {
    let at = "passwd.users[]";
    let m = obj(v, at)?;
    let keys = [
        ("name", "name"),
        ("password_hash", "passwordHash"),
        ("ssh_authorized_keys", "sshAuthorizedKeys"),
        ("gecos", "gecos"),
        ("groups", "groups"),
        ("home_dir", "homeDir"),
        ("shell", "shell"),
        ("primary_group", "primaryGroup"),
        ("uid", "uid"),
        ("no_create_home", "noCreateHome"),
    ];
    let clc: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
    only(m, &clc, at)?;
    let mut out = json!({});
    for (from, to) in keys {
        if let Some(v) = m.get(from) {
            out[to] = v.clone();
        }
    }
    Ok(out)
}
