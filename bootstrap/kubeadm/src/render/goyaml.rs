//! YAML the way kubeadm's config marshalling writes it (Go struct → JSON → `sigs.k8s.io/yaml` →
//! go-yaml v2): map keys sorted, sequences not indented under their key, `{}`/`[]` for empty
//! containers, plain scalars unless a string would read back as another type (double quotes) or
//! cannot be plain (single quotes), multi-line strings as literal blocks.
//!
//! A general YAML library would produce valid YAML too, but not these bytes; the bootstrap data
//! must not change when an installation switches from CABPK to Capstan.

use serde_json::Value;

pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => map(value, 0, &mut out),
        Value::Array(a) if !a.is_empty() => seq(a, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn map(value: &Value, indent: usize, out: &mut String) {
    let Value::Object(m) = value else { return };
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    let pad = " ".repeat(indent);
    for k in keys {
        let v = &m[k];
        out.push_str(&pad);
        out.push_str(&string(k));
        out.push(':');
        entry(v, indent, out);
    }
}

/// The value part after `key:` (or after `- ` for block items inside a sequence).
fn entry(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            map(v, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            seq(a, indent, out);
        }
        Value::String(s) if s.contains('\n') => {
            out.push(' ');
            literal(s, indent + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn seq(items: &[Value], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        out.push_str(&pad);
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => {
                // The first key shares the dash's line; the rest line up under it.
                let mut inner = String::new();
                map(item, indent + 2, &mut inner);
                out.push_str(inner.trim_start_matches(' '));
            }
            Value::Array(a) if !a.is_empty() => {
                let mut inner = String::new();
                seq(a, indent + 2, &mut inner);
                out.push_str(inner.trim_start_matches(' '));
            }
            Value::String(s) if s.contains('\n') => literal(s, indent + 2, out),
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn literal(s: &str, indent: usize, out: &mut String) {
    let trailing = s.len() - s.trim_end_matches('\n').len();
    out.push_str(match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    out.push('\n');
    let body = s.strip_suffix('\n').unwrap_or(s);
    let pad = " ".repeat(indent);
    for line in body.split('\n') {
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
        out.push('\n');
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// go-yaml v2's choice of style for a string scalar.
fn string(s: &str) -> String {
    if s.is_empty() || resolves_to_non_string(s) {
        return double_quoted(s);
    }
    if plain_allowed(s) {
        return s.to_string();
    }
    if s.chars().all(|c| c == ' ' || !c.is_control()) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    double_quoted(s)
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// YAML 1.1 implicit types go-yaml v2 resolves: bools, nulls, ints, floats (incl. base 60).
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
        "on", "On", "ON", "off", "Off", "OFF", "~", "null", "Null", "NULL", ".inf", ".Inf", ".INF", "+.inf", "+.Inf",
        "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c == '_' || c.is_digit(radix));
    if digits(body, 10)
        || body.strip_prefix("0x").is_some_and(|t| digits(t, 16))
        || body.strip_prefix("0b").is_some_and(|t| digits(t, 2))
        || body.strip_prefix("0o").is_some_and(|t| digits(t, 8))
    {
        return true;
    }
    // Floats: digits with one dot and an optional exponent, e.g. `1.5`, `.5`, `1e3`, `1.0e+3`.
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = {
        let parts: Vec<&str> = mantissa.split('.').collect();
        parts.len() <= 2
            && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit() || c == '_'))
            && parts.iter().any(|p| !p.is_empty())
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e), 10));
    if mantissa_ok && exponent_ok && (mantissa.contains('.') || exponent.is_some()) {
        return true;
    }
    // Sexagesimal (`1:20`, `190:20:30`), which go-yaml v2 still treats as a float.
    let parts: Vec<&str> = body.split(':').collect();
    parts.len() > 1
        && parts[0].chars().all(|c| c.is_ascii_digit())
        && !parts[0].is_empty()
        && parts[1..]
            .iter()
            .all(|p| (1..=2).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
}

/// libyaml's plain-scalar analysis for block context.
fn plain_allowed(s: &str) -> bool {
    let first = s.chars().next().unwrap_or(' ');
    let second = s.chars().nth(1);
    if s.starts_with(' ') || s.ends_with(' ') {
        return false;
    }
    if matches!(
        first,
        '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%' | '@' | '`'
    ) {
        return false;
    }
    if matches!(first, '-' | '?' | ':') && second.is_none_or(|c| c == ' ') {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    !s.chars().any(|c| c.is_control() || c == '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layout_like_go_yaml_v2() {
        let v = json!({
            "kind": "JoinConfiguration",
            "apiVersion": "kubeadm.k8s.io/v1beta3",
            "discovery": {"bootstrapToken": {"token": "abcdef.0123456789abcdef", "apiServerEndpoint": "10.0.0.1:6443", "caCertHashes": ["sha256:aa"]}},
            "nodeRegistration": {"taints": null, "kubeletExtraArgs": {"v": "4", "node-labels": "a=b,c=d"}},
            "controlPlane": {"localAPIEndpoint": {}},
            "list": [{"name": "a", "value": "1"}, {"name": "b"}],
            "nested": [["x", "y"]],
        });
        assert_eq!(
            to_string(&v),
            "apiVersion: kubeadm.k8s.io/v1beta3\n\
             controlPlane:\n  localAPIEndpoint: {}\n\
             discovery:\n  bootstrapToken:\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes:\n    - sha256:aa\n    token: abcdef.0123456789abcdef\n\
             kind: JoinConfiguration\n\
             list:\n- name: a\n  value: \"1\"\n- name: b\n\
             nested:\n- - x\n  - \"y\"\n\
             nodeRegistration:\n  kubeletExtraArgs:\n    node-labels: a=b,c=d\n    v: \"4\"\n  taints: null\n"
        );
    }

    #[test]
    fn scalar_styles() {
        for (s, want) in [
            ("", "\"\""),
            ("true", "\"true\""),
            ("on", "\"on\""),
            ("6443", "\"6443\""),
            ("1.5", "\"1.5\""),
            ("1e3", "\"1e3\""),
            ("10:30", "\"10:30\""),
            ("v1.30.0", "v1.30.0"),
            ("10.0.0.1:6443", "10.0.0.1:6443"),
            ("192.168.0.0/16", "192.168.0.0/16"),
            ("*.example.com", "'*.example.com'"),
            ("a: b", "'a: b'"),
            ("- x", "'- x'"),
            ("it's", "it's"),
            (
                "unix:///var/run/containerd/containerd.sock",
                "unix:///var/run/containerd/containerd.sock",
            ),
        ] {
            assert_eq!(string(s), want, "{s}");
        }
        assert_eq!(to_string(&json!({"s": "a\nb\n"})), "s: |\n  a\n  b\n");
        assert_eq!(to_string(&json!({"s": "a\nb"})), "s: |-\n  a\n  b\n");
    }
}
