//! The `## template: jinja` part handler: cloud-init renders the rest of the user-data with
//! jinja2 (`trim_blocks=True`, the `do` extension, undefined variables printed as
//! `CI_MISSING_JINJA_VAR/<name>`) against its instance data, then looks at what came out.
//!
//! minijinja stands in for jinja2. The undefined handling is rebuilt on top of it: instance-data
//! mappings are objects that answer a missing attribute with a [`Missing`] placeholder naming
//! the key, so `{{ ds.meta_data.nope }}` and `{{ nope }}` print `CI_MISSING_JINJA_VAR/nope`
//! as in cloud-init, `is defined` and `default` see through it, and reading an attribute *of*
//! a missing value fails the render as jinja2's `UndefinedError` does. What minijinja still
//! produces as a plain undefined (a subscript `ds.meta_data['nope']`, an attribute of a string,
//! an index past the end of a list) prints as `CI_MISSING_JINJA_VAR/<unknown>`: the name is
//! not available there.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State};
use serde_json::{Map, Value as Json};

use super::decode::{gunzip, is_gzip};
use super::{CloudInitError, InstanceData};

pub const MISSING_JINJA_PREFIX: &str = "CI_MISSING_JINJA_VAR/";

/// cloud-init's `JinjaTemplatePartHandler.prefixes`, compared case-insensitively.
const JINJA_PREFIX: &str = "## template: jinja";

/// Renders user-data: gunzipped if compressed (cloud-init's `decomp_gzip`), and rendered when
/// it carries the jinja header. Anything else comes back unchanged.
pub fn render(user_data: &[u8], instance: &InstanceData) -> Result<String, CloudInitError> {
    let text = user_data_text(user_data)?;
    // cloud-init looks for a MIME header in the first 4 KiB before anything else.
    let head: String = text.chars().take(4096).collect::<String>().to_lowercase();
    if head.contains("mime-version:") {
        return Err(CloudInitError::Multipart);
    }
    let Some(body) = jinja_body(&text)? else {
        return Ok(text);
    };
    let rendered = render_template(&body, &instance.jinja_variables())?;
    let missing = missing_jinja_vars(&rendered);
    if !missing.is_empty() {
        tracing::warn!(variables = ?missing, "could not render jinja template variables in user-data");
    }
    Ok(rendered)
}

/// The variables a rendered document still names as missing, as cloud-init's warning lists them
/// (`CI_MISSING_JINJA_VAR/` followed by anything up to whitespace).
pub fn missing_jinja_vars(rendered: &str) -> Vec<String> {
    rendered
        .match_indices(MISSING_JINJA_PREFIX)
        .filter_map(|(at, _)| {
            let rest = &rendered[at + MISSING_JINJA_PREFIX.len()..];
            let name: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

fn user_data_text(user_data: &[u8]) -> Result<String, CloudInitError> {
    let bytes = if is_gzip(user_data) {
        gunzip(user_data).map_err(CloudInitError::UserDataGzip)?
    } else {
        user_data.to_vec()
    };
    String::from_utf8(bytes).map_err(|e| CloudInitError::UserDataNotUtf8 {
        offset: e.utf8_error().valid_up_to(),
    })
}

/// The template below the header, or `None` when the user-data is not a jinja part. Part types
/// are matched on the lower-cased, left-stripped payload; the header line itself must then be
/// `## template: jinja` (templater's `##\s*template:(.*)`, type `jinja` after strip), else
/// cloud-init raises.
fn jinja_body(text: &str) -> Result<Option<String>, CloudInitError> {
    let lead = text.trim_start();
    if !lead
        .get(..JINJA_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(JINJA_PREFIX))
    {
        return Ok(None);
    }
    let (ident, rest) = text.split_once('\n').unwrap_or((text, ""));
    let kind = ident
        .strip_prefix("##")
        .map(str::trim_start)
        .and_then(|s| {
            s.get(..9)
                .filter(|p| p.eq_ignore_ascii_case("template:"))
                .map(|_| &s[9..])
        })
        .map(|t| t.trim().to_lowercase());
    match kind.as_deref() {
        Some("jinja") => {}
        _ => {
            return Err(CloudInitError::Template {
                line: Some(1),
                message: format!(
                    "unknown template header {:?}: cloud-init expects \"## template: jinja\"",
                    ident.trim_end()
                ),
            });
        }
    }
    // jinja2 turns every line ending into "\n".
    Ok(Some(rest.replace("\r\n", "\n").replace('\r', "\n")))
}

fn environment(globals: &mut BTreeSet<String>) -> Result<Environment<'static>, CloudInitError> {
    let mut env = Environment::new();
    // cloud-init's jinja2 Template: trim_blocks, no lstrip_blocks; it re-adds the trailing newline
    // jinja2 drops, which is what keep_trailing_newline does.
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| CloudInitError::Template {
            line: None,
            message: e.to_string(),
        })?;
    env.set_syntax(syntax);
    // Debug mode would append a source dump to every error message.
    env.set_debug(false);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(format_value);
    env.add_test("defined", |v: &Value| !is_undefined(v));
    env.add_test("undefined", |v: &Value| is_undefined(v));
    env.add_filter("default", default_filter);
    env.add_filter("d", default_filter);
    globals.extend(env.globals().map(|(name, _)| name.to_string()));
    Ok(env)
}

fn render_template(body: &str, vars: &Map<String, Json>) -> Result<String, CloudInitError> {
    let mut globals = BTreeSet::new();
    let env = environment(&mut globals)?;
    let template = env.template_from_str(body).map_err(|e| CloudInitError::Template {
        line: e.line().map(|l| l + 1),
        message: syntax_message(&e, body),
    })?;
    let root = Value::from_object(Root {
        vars: Namespace {
            path: String::new(),
            map: vars.clone(),
        },
        globals,
    });
    template.render(root).map_err(|e| CloudInitError::Render {
        line: e.line().map(|l| l + 1),
        message: render_message(&e, body),
    })
}

/// The parser's complaint and the offending line, the two parts of cloud-init's "Unable to parse
/// Jinja template due to syntax error" message.
fn syntax_message(e: &Error, body: &str) -> String {
    let detail = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
    match e.line().and_then(|l| body.lines().nth(l.saturating_sub(1))) {
        Some(src) => format!("{detail}: {}", src.trim()),
        None => detail,
    }
}

fn render_message(e: &Error, body: &str) -> String {
    let detail = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
    if e.kind() == ErrorKind::InvalidOperation
        && let Some((a, b)) = e
            .line()
            .and_then(|l| body.lines().nth(l.saturating_sub(1)))
            .and_then(hyphenated_name)
    {
        // `{{ ds.meta_data.local-hostname }}` is `local - hostname` to jinja: cloud-init's
        // UndefinedJinjaVariable.__sub__ explains it this way.
        return format!(
            "Undefined jinja variable: \"{a}-{b}\". Jinja tried subtraction. Perhaps you meant \"{a}_{b}\"?"
        );
    }
    detail
}

/// The first `name-name` inside a `{{ }}` or `{% %}` of a template line.
fn hyphenated_name(line: &str) -> Option<(String, String)> {
    let mut rest = line;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let inner = match after.chars().next() {
            Some('{') => after[1..].split("}}").next(),
            Some('%') => after[1..].split("%}").next(),
            _ => None,
        };
        if let Some(found) = inner.and_then(find_hyphenated) {
            return Some(found);
        }
        rest = after;
    }
    None
}

fn find_hyphenated(expr: &str) -> Option<(String, String)> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let chars: Vec<char> = expr.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c != '-' || i == 0 || i + 1 >= chars.len() {
            continue;
        }
        if ident(chars[i - 1]) && (chars[i + 1].is_ascii_alphabetic() || chars[i + 1] == '_') {
            let a: String = chars[..i]
                .iter()
                .rev()
                .take_while(|c| ident(**c))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let b: String = chars[i + 1..].iter().take_while(|c| ident(**c)).collect();
            if a.chars().next().is_some_and(|c| !c.is_ascii_digit()) {
                return Some((a, b));
            }
        }
    }
    None
}

fn is_undefined(v: &Value) -> bool {
    v.is_undefined() || v.downcast_object_ref::<Missing>().is_some()
}

/// jinja2's `default(value, default_value='', boolean=False)`, counting our placeholder as
/// undefined.
fn default_filter(value: &Value, args: Rest<Value>) -> Result<Value, Error> {
    if let Some(m) = value.downcast_object_ref::<Missing>() {
        m.check()?;
    }
    let (positional, kwargs): (Vec<Value>, Option<Kwargs>) = match args.last().map(|v| Kwargs::try_from(v.clone())) {
        Some(Ok(kw)) => (args[..args.len() - 1].to_vec(), Some(kw)),
        _ => (args.to_vec(), None),
    };
    if positional.len() > 2 {
        return Err(Error::from(ErrorKind::TooManyArguments));
    }
    let mut other = positional.first().cloned();
    let mut boolean = positional.get(1).is_some_and(Value::is_true);
    if let Some(kw) = kwargs {
        if let Some(v) = kw.get::<Option<Value>>("default_value")? {
            other = Some(v);
        }
        if let Some(b) = kw.get::<Option<bool>>("boolean")? {
            boolean = b;
        }
        kw.assert_all_used()?;
    }
    if is_undefined(value) || (boolean && !value.is_true()) {
        Ok(other.unwrap_or_else(|| Value::from("")))
    } else {
        Ok(value.clone())
    }
}

/// Prints values the way jinja2 (Python's `str()`) does where it differs from minijinja.
fn format_value(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if let Some(m) = value.downcast_object_ref::<Missing>() {
        m.check()?;
    }
    let write = |out: &mut Output, s: &str| out.write_str(s).map_err(|_| Error::from(ErrorKind::WriteFailure));
    if value.is_undefined() {
        return write(out, &format!("{MISSING_JINJA_PREFIX}<unknown>"));
    }
    match value.kind() {
        ValueKind::None => write(out, "None"),
        ValueKind::Bool => write(out, if value.is_true() { "True" } else { "False" }),
        _ => minijinja::escape_formatter(out, state, value),
    }
}

fn to_value(json: &Json, path: String) -> Value {
    match json {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_value(v, format!("{path}[{i}]")))
                .collect::<Vec<_>>(),
        ),
        Json::Object(map) => Value::from_object(Namespace { path, map: map.clone() }),
    }
}

/// An instance-data mapping. Attribute access (`a.b`, how templates read instance data) falls
/// back to a named [`Missing`]; subscripts and `in` go through `get_value` and see a plain
/// absence, so `'x' in ds.meta_data` stays false.
#[derive(Debug)]
struct Namespace {
    path: String,
    map: Map<String, Json>,
}

impl Namespace {
    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn lookup(&self, key: &str) -> Option<Value> {
        self.map.get(key).map(|v| to_value(v, self.child_path(key)))
    }
}

impl Object for Namespace {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.lookup(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        Some(self.lookup(key).unwrap_or_else(|| {
            Value::from_object(Missing {
                name: key.to_string(),
                fault: None,
                path: self.child_path(key),
            })
        }))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.map.keys().map(|k| Value::from(k.as_str())).collect())
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&python_repr(&Json::Object(self.map.clone())))
    }
}

/// The template's root: instance data, then minijinja's globals (`range`, `namespace`, ...),
/// then a named placeholder for anything else.
#[derive(Debug)]
struct Root {
    vars: Namespace,
    globals: BTreeSet<String>,
}

impl Object for Root {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.vars.lookup(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        if let Some(v) = self.vars.lookup(key) {
            return Some(v);
        }
        if self.globals.contains(key) {
            return None;
        }
        Some(Value::from_object(Missing {
            name: key.to_string(),
            fault: None,
            path: key.to_string(),
        }))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.vars.map.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

/// cloud-init's `UndefinedJinjaVariable`: prints as `CI_MISSING_JINJA_VAR/<name>`, is false and
/// empty. Reading an attribute of it is jinja2's `UndefinedError`; minijinja cannot fail inside
/// a lookup, so the result carries the fault and fails when printed or defaulted.
#[derive(Debug)]
struct Missing {
    name: String,
    path: String,
    fault: Option<String>,
}

impl Missing {
    fn check(&self) -> Result<(), Error> {
        match &self.fault {
            Some(msg) => Err(Error::new(ErrorKind::UndefinedError, msg.clone())),
            None => Ok(()),
        }
    }
}

impl Object for Missing {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Iterable
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        let fault = self
            .fault
            .clone()
            .unwrap_or_else(|| format!("'{}' is undefined (reading its attribute '{key}')", self.path));
        Some(Value::from_object(Missing {
            name: key.to_string(),
            path: format!("{}.{key}", self.path),
            fault: Some(fault),
        }))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }

    fn is_true(self: &Arc<Self>) -> bool {
        false
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{MISSING_JINJA_PREFIX}{}", self.name)
    }
}

/// Python's `repr()` of instance data, which is what jinja2 prints for a dict or list.
fn python_repr(v: &Json) -> String {
    match v {
        Json::Null => "None".into(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Json::Array(a) => format!("[{}]", a.iter().map(python_repr).collect::<Vec<_>>().join(", ")),
        Json::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", python_repr(&Json::String(k.clone())), python_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::nocloud::Seed;

    fn instance() -> InstanceData {
        InstanceData::from_seed(&Seed {
            user_data: Vec::new(),
            meta_data: json!({"instance-id": "i-1", "local-hostname": "cp-1"}),
            network_config: None,
        })
    }

    fn r(template: &str) -> Result<String, CloudInitError> {
        render(template.as_bytes(), &instance())
    }

    #[test]
    fn header_variants() {
        assert_eq!(r("## template: jinja\n{{ v1.instance_id }}\n").unwrap(), "i-1\n");
        assert_eq!(r("## template: jinja  \r\n{{ local_hostname }}\r\n").unwrap(), "cp-1\n");
        assert_eq!(r("## Template: Jinja\n{{ local_hostname }}").unwrap(), "cp-1");
        // Not a template: returned as is, braces included.
        assert_eq!(r("#cloud-config\n{{ x }}\n").unwrap(), "#cloud-config\n{{ x }}\n");
        assert!(matches!(
            r("## template: jinja2\nx"),
            Err(CloudInitError::Template { .. })
        ));
    }

    #[test]
    fn missing_variables_are_named() {
        assert_eq!(
            r("## template: jinja\n{{ nope }}").unwrap(),
            "CI_MISSING_JINJA_VAR/nope"
        );
        assert_eq!(
            r("## template: jinja\n{{ ds.meta_data.nope }} {{ v1.nope }}").unwrap(),
            "CI_MISSING_JINJA_VAR/nope CI_MISSING_JINJA_VAR/nope"
        );
        assert_eq!(
            r("## template: jinja\n{% if nope is defined %}y{% else %}n{% endif %} {{ nope | default('d') }} {{ 'nope' in ds.meta_data }}").unwrap(),
            "n d False"
        );
        assert_eq!(
            missing_jinja_vars("a CI_MISSING_JINJA_VAR/x b\nCI_MISSING_JINJA_VAR/y.z"),
            ["x", "y.z"]
        );
        // Reading an attribute of a missing value is jinja2's UndefinedError.
        let e = r("## template: jinja\n#cloud-config\n{{ nope.deeper }}").unwrap_err();
        assert!(matches!(e, CloudInitError::Render { line: Some(3), .. }), "{e}");
    }

    #[test]
    fn python_printing_and_builtins() {
        assert_eq!(
            r("## template: jinja\n{{ v1.region }} {{ true }}").unwrap(),
            "None True"
        );
        assert_eq!(
            r("## template: jinja\n{% for i in range(2) %}{{ i }}{% endfor %}").unwrap(),
            "01"
        );
        assert_eq!(
            r("## template: jinja\n{{ v1.local_hostname.upper() }}").unwrap(),
            "CP-1"
        );
        assert_eq!(
            r("## template: jinja\n{% for k, v in ds.meta_data.items() %}{{ k }}={{ v }} {% endfor %}{{ ds.meta_data.get('x', 'd') }}")
                .unwrap(),
            "dsmode=net instance-id=i-1 instance_id=i-1 local-hostname=cp-1 local_hostname=cp-1 d"
        );
        assert_eq!(
            r("## template: jinja\n{{ v1._beta_keys }} {{ sys_info.dist|length }}").unwrap(),
            "['subplatform'] 3"
        );
        // trim_blocks: the newline after a block tag goes, leading indentation stays.
        assert_eq!(
            r("## template: jinja\n  {% if true %}\nx\n  {% endif %}\n").unwrap(),
            "  x\n  "
        );
    }

    #[test]
    fn hyphen_in_a_name_is_a_subtraction() {
        let e = r("## template: jinja\n#cloud-config\nhostname: {{ ds.meta_data.local-hostname }}\n").unwrap_err();
        let CloudInitError::Render { line, message } = e else {
            panic!("{e:?}")
        };
        assert_eq!(line, Some(3));
        assert!(message.contains("Perhaps you meant \"local_hostname\""), "{message}");
    }

    #[test]
    fn syntax_errors_carry_the_user_data_line() {
        let e = r("## template: jinja\n#cloud-config\nruncmd:\n  - {% if %}\n").unwrap_err();
        let CloudInitError::Template { line, message } = e.clone() else {
            panic!("{e:?}")
        };
        assert_eq!(line, Some(4), "{message}");
        assert!(message.contains("{% if %}"), "{message}");
        assert!(e.to_string().contains("line 4"), "{e}");
    }

    #[test]
    fn gzip_and_mime() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"## template: jinja\n{{ local_hostname }}").unwrap();
        assert_eq!(render(&enc.finish().unwrap(), &instance()).unwrap(), "cp-1");
        assert_eq!(
            r("Content-Type: multipart/mixed; boundary=x\nMIME-Version: 1.0\n").unwrap_err(),
            CloudInitError::Multipart
        );
        assert!(matches!(
            render(&[0xff, 0xfe], &instance()),
            Err(CloudInitError::UserDataNotUtf8 { offset: 0 })
        ));
    }
}
