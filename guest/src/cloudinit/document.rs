//! The `#cloud-config` part: the YAML keys bootstrap depends on, read with the same tolerance
//! as cloud-init's modules (`cc_write_files`, `cc_runcmd`, `cc_bootcmd`, `util.shellify`).
//! A value those modules would crash on is an error here, reported with its YAML location.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Tagged;

use super::runcmd::Command;
use super::{CloudInitError, yaml11_options};

/// `cc_write_files` defaults.
const DEFAULT_MODE: u32 = 0o644;
const BINARY_TAG: &str = "tag:yaml.org,2002:binary";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudConfig {
    pub write_files: Vec<WriteFile>,
    pub runcmd: Vec<Command>,
    pub bootcmd: Vec<Command>,
    /// Other top-level keys, in document order: cloud-init acts on them (users, ntp, ...), the
    /// simulator only records that they were there.
    pub other_keys: Vec<String>,
    /// What cloud-init would log and carry on from (an unknown `encoding`).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFile {
    pub path: String,
    /// As written in the YAML. For a `!!binary` scalar this is its base64 text (see `binary`).
    pub content: String,
    pub encoding: Encoding,
    /// The mode as given: a string such as `"0640"`, or an integer mode (YAML 1.1 reads an
    /// unquoted `0640` as octal) shown in octal. `None` means cloud-init's default, `0644`.
    pub permissions: Option<String>,
    /// Recorded only: the simulator does not chown.
    pub owner: Option<String>,
    pub append: bool,
    pub defer: bool,
    /// The content was a YAML `!!binary` scalar: PyYAML hands cloud-init bytes, which are then
    /// decoded again according to `encoding`.
    pub binary: bool,
}

/// `cc_write_files.canonicalize_extraction`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encoding {
    /// `text/plain`, an empty or absent `encoding`, and (with a warning) anything unknown.
    #[default]
    Text,
    /// `b64`, `base64`.
    Base64,
    /// `gz`, `gzip`.
    Gzip,
    /// `gz+base64`, `gzip+base64`, `gz+b64`, `gzip+b64`.
    GzipBase64,
}

impl Encoding {
    /// Reads an `encoding` value; the second item is cloud-init's warning for an unknown one.
    pub fn parse(raw: &str) -> (Encoding, Option<String>) {
        let lowered = raw.trim().to_lowercase();
        let enc = match lowered.as_str() {
            "gz" | "gzip" => Encoding::Gzip,
            "gz+base64" | "gzip+base64" | "gz+b64" | "gzip+b64" => Encoding::GzipBase64,
            "b64" | "base64" => Encoding::Base64,
            "" | "text/plain" => Encoding::Text,
            _ => {
                return (
                    Encoding::Text,
                    Some(format!("Unknown encoding type {lowered}, assuming text/plain")),
                );
            }
        };
        (enc, None)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Text => "text/plain",
            Encoding::Base64 => "base64",
            Encoding::Gzip => "gzip",
            Encoding::GzipBase64 => "gzip+base64",
        }
    }
}

impl WriteFile {
    /// The file mode cloud-init sets (`decode_perms`, default `0644`).
    pub fn mode(&self) -> Result<u32, CloudInitError> {
        match &self.permissions {
            None => Ok(DEFAULT_MODE),
            Some(p) => parse_octal_mode(p).ok_or_else(|| CloudInitError::Permissions {
                path: self.path.clone(),
                value: p.clone(),
            }),
        }
    }

    /// The bytes cloud-init writes: `!!binary` decoded first, then each step of the encoding.
    pub fn decode(&self) -> Result<Vec<u8>, CloudInitError> {
        use super::decode::{gunzip, python_b64decode, python_b64decode_str};
        let fail = |message: String| CloudInitError::Decode {
            path: self.path.clone(),
            encoding: if self.binary && self.encoding == Encoding::Text {
                "!!binary"
            } else {
                self.encoding.as_str()
            },
            message,
        };
        let raw = if self.binary {
            python_b64decode_str(&self.content).map_err(fail)?
        } else {
            self.content.as_bytes().to_vec()
        };
        // Text content is a Python str, which b64decode accepts only if it is ASCII; bytes from
        // `!!binary` have no such check.
        let b64 = |data: &[u8]| {
            if self.binary {
                python_b64decode(data)
            } else {
                python_b64decode_str(&self.content)
            }
        };
        match self.encoding {
            Encoding::Text => Ok(raw),
            Encoding::Base64 => b64(&raw).map_err(fail),
            Encoding::Gzip => gunzip(&raw).map_err(fail),
            Encoding::GzipBase64 => gunzip(&b64(&raw).map_err(fail)?).map_err(fail),
        }
    }
}

/// `int(str(perm), 8)`, limited to the bits chmod uses.
fn parse_octal_mode(s: &str) -> Option<u32> {
    let t = s.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    // Python allows single underscores between digits, and one right after a base prefix.
    let digits = match t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        Some(d) => d.strip_prefix('_').unwrap_or(d),
        None => t,
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let mut mode: u32 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        let d = c.to_digit(8)?;
        mode = mode.checked_mul(8)?.checked_add(d)?;
    }
    (mode <= 0o7777).then_some(mode)
}

/// Parses a rendered user-data document as cloud-config.
pub fn parse(doc: &str) -> Result<CloudConfig, CloudInitError> {
    check_part_type(doc)?;
    let raw: Option<RawConfig> = serde_saphyr::from_str_with_options(doc, yaml11_options()).map_err(yaml_error)?;
    let raw = raw.unwrap_or_default();
    let mut warnings = Vec::new();
    let write_files = raw
        .write_files
        .into_iter()
        .map(|f| {
            warnings.extend(f.warning.map(|w| format!("write_files {}: {w}", f.file.path)));
            f.file
        })
        .collect();
    Ok(CloudConfig {
        write_files,
        runcmd: raw.runcmd,
        bootcmd: raw.bootcmd,
        other_keys: raw.other_keys,
        warnings,
    })
}

/// cloud-init picks the handler from the start of the lower-cased, left-stripped payload; only
/// `text/cloud-config` reaches the modules we emulate.
fn check_part_type(doc: &str) -> Result<(), CloudInitError> {
    let lead: String = doc.trim_start().chars().take(32).collect::<String>().to_lowercase();
    let other_config_type = lead.starts_with("#cloud-config-archive") || lead.starts_with("#cloud-config-jsonp");
    if lead.starts_with("#cloud-config") && !other_config_type {
        return Ok(());
    }
    let first_line: String = doc.lines().next().unwrap_or_default().chars().take(120).collect();
    Err(CloudInitError::NotCloudConfig { first_line })
}

fn yaml_error(e: serde_saphyr::Error) -> CloudInitError {
    let location = e.location();
    let full = e.to_string();
    // serde-saphyr prefixes "error: line L column C: " and may append a snippet; the location
    // goes into our own fields.
    let mut message = full.lines().next().unwrap_or_default();
    message = message.strip_prefix("error: ").unwrap_or(message);
    if let Some(l) = &location {
        let prefix = format!("line {} column {}: ", l.line(), l.column());
        message = message.strip_prefix(prefix.as_str()).unwrap_or(message);
    }
    CloudInitError::Yaml {
        message: message.to_string(),
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
    }
}

#[derive(Default)]
struct RawConfig {
    write_files: Vec<RawFile>,
    runcmd: Vec<Command>,
    bootcmd: Vec<Command>,
    other_keys: Vec<String>,
}

impl<'de> Deserialize<'de> for RawConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ConfigVisitor)
    }
}

struct ConfigVisitor;

impl<'de> Visitor<'de> for ConfigVisitor {
    type Value = RawConfig;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of cloud-config keys")
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawConfig, E> {
        Ok(RawConfig::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawConfig, A::Error> {
        let mut cfg = RawConfig::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "write_files" => cfg.write_files = map.next_value::<FileList>()?.0,
                "runcmd" => cfg.runcmd = map.next_value::<CommandList>()?.0,
                "bootcmd" => cfg.bootcmd = map.next_value::<CommandList>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    if !cfg.other_keys.contains(&key) {
                        cfg.other_keys.push(key);
                    }
                }
            }
        }
        Ok(cfg)
    }
}

struct FileList(Vec<RawFile>);

impl<'de> Deserialize<'de> for FileList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("write_files to be a list of files")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FileList, A::Error> {
                let mut files = Vec::new();
                while let Some(f) = seq.next_element::<RawFile>()? {
                    files.push(f);
                }
                Ok(FileList(files))
            }
        }
        d.deserialize_any(V)
    }
}

struct RawFile {
    file: WriteFile,
    warning: Option<String>,
}

impl<'de> Deserialize<'de> for RawFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FileVisitor)
    }
}

struct FileVisitor;

impl<'de> Visitor<'de> for FileVisitor {
    type Value = RawFile;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a write_files entry (a mapping with path, content, ...)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFile, A::Error> {
        let mut path: Option<String> = None;
        let mut content: Option<Tagged<Text>> = None;
        let mut encoding = None;
        let mut owner = None;
        let mut permissions = None;
        let mut append = false;
        let mut defer = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "path" => path = map.next_value::<Option<Text>>()?.map(|t| t.0),
                "content" => content = Some(map.next_value()?),
                "encoding" => encoding = map.next_value::<Option<Text>>()?.map(|t| t.0),
                "owner" => owner = map.next_value::<Option<Text>>()?.map(|t| t.0),
                "permissions" => permissions = map.next_value::<Option<Mode>>()?.map(|m| m.0),
                "append" => append = map.next_value::<PyBool>()?.0,
                "defer" => defer = map.next_value::<PyBool>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // cloud-init skips an entry without a path with a warning: the file a node needs is then
        // simply missing, so the simulator stops here instead.
        let path = path
            .filter(|p| !p.is_empty())
            .ok_or_else(|| de::Error::custom("write_files entry has no path"))?;
        let (encoding, warning) = Encoding::parse(encoding.as_deref().unwrap_or_default());
        let (content, binary) = match content {
            None => (String::new(), false),
            Some(Tagged(text, tag)) => (text.0, tag.as_deref() == Some(BINARY_TAG)),
        };
        Ok(RawFile {
            file: WriteFile {
                path,
                content,
                encoding,
                permissions,
                owner,
                append,
                defer,
                binary,
            },
            warning,
        })
    }
}

/// A string-valued scalar. cloud-init calls string methods on these (`encode`, `lower`,
/// `os.path.abspath`), which fail for numbers, booleans and collections; `content: ` (null)
/// fails the same way.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `decode_perms`: an int is the mode itself, anything else goes through `int(str(p), 8)`.
/// cloud-init falls back to 0644 with a warning on a bad value; we refuse it.
struct Mode(String);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl V {
            fn int<E: de::Error>(n: u64) -> Result<Mode, E> {
                if n > 0o7777 {
                    return Err(E::custom(format!("permissions {n} ({n:#o}) is not a file mode")));
                }
                Ok(Mode(format!("0{n:o}")))
            }
        }
        impl Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("permissions as an octal string such as '0640' or an integer mode")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Mode, E> {
                V::int(n)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Mode, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom(format!("permissions {n} is negative")))
                    .and_then(V::int)
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Mode, E> {
                if !n.is_finite() || n < 0.0 {
                    return Err(E::custom(format!("permissions {n} is not a file mode")));
                }
                V::int(n.trunc() as u64)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Mode, E> {
                parse_octal_mode(s)
                    .map(|_| Mode(s.to_string()))
                    .ok_or_else(|| E::custom(format!("permissions {s:?} is not an octal file mode such as '0640'")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `util.get_cfg_option_bool` → `translate_bool`: falsy is false, a bool is itself, and
/// otherwise `str(v).lower().strip()` must be one of true/1/on/yes.
struct PyBool(bool);

impl<'de> Deserialize<'de> for PyBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PyBool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<PyBool, E> {
                Ok(PyBool(b))
            }
            fn visit_unit<E: de::Error>(self) -> Result<PyBool, E> {
                Ok(PyBool(false))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PyBool, E> {
                Ok(PyBool(n == 1))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PyBool, E> {
                Ok(PyBool(n == 1))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<PyBool, E> {
                Ok(PyBool(false))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PyBool, E> {
                Ok(PyBool(matches!(
                    s.trim().to_lowercase().as_str(),
                    "true" | "1" | "on" | "yes"
                )))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PyBool, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(PyBool(false))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PyBool, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(PyBool(false))
            }
        }
        d.deserialize_any(V)
    }
}

/// `runcmd`/`bootcmd`: `util.shellify` takes a list whose items are strings (script lines),
/// lists (argv, each item `str()`-ed) or null (skipped); anything else is a TypeError.
struct CommandList(Vec<Command>);

impl<'de> Deserialize<'de> for CommandList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CommandList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of commands")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CommandList, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<CommandItem>()? {
                    out.extend(item.0);
                }
                Ok(CommandList(out))
            }
        }
        d.deserialize_any(V)
    }
}

struct CommandItem(Option<Command>);

impl<'de> Deserialize<'de> for CommandItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CommandItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command: a string for sh, or a list of arguments")
            }
            fn visit_unit<E: de::Error>(self) -> Result<CommandItem, E> {
                Ok(CommandItem(None))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<CommandItem, E> {
                Ok(CommandItem(Some(Command::Shell(s.to_string()))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CommandItem, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<PyStr>()? {
                    argv.push(arg.0);
                }
                Ok(CommandItem(Some(Command::Argv(argv))))
            }
        }
        d.deserialize_any(V)
    }
}

/// Python's `str()` of a scalar argv item. A nested list or mapping would be printed as its
/// Python repr; nobody means that, so it is refused.
struct PyStr(String);

impl<'de> Deserialize<'de> for PyStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PyStr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar argument")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PyStr, E> {
                Ok(PyStr(s.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PyStr, E> {
                Ok(PyStr(n.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PyStr, E> {
                Ok(PyStr(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<PyStr, E> {
                Ok(PyStr(if n.fract() == 0.0 && n.is_finite() {
                    format!("{n:.1}")
                } else {
                    n.to_string()
                }))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<PyStr, E> {
                Ok(PyStr(if b { "True" } else { "False" }.into()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<PyStr, E> {
                Ok(PyStr("None".into()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(yaml: &str) -> Result<WriteFile, CloudInitError> {
        parse(&format!("#cloud-config\nwrite_files:\n{yaml}")).map(|c| c.write_files[0].clone())
    }

    #[test]
    fn header_is_required_and_case_insensitive() {
        assert!(parse("#cloud-config\n").unwrap().write_files.is_empty());
        assert!(parse("  #Cloud-Config\nruncmd: [ls]\n").is_ok());
        let e = parse("#!/bin/sh\necho hi\n").unwrap_err();
        assert_eq!(
            e,
            CloudInitError::NotCloudConfig {
                first_line: "#!/bin/sh".into()
            }
        );
        assert!(
            e.to_string()
                .contains("does not start with #cloud-config (first line: \"#!/bin/sh\")"),
            "{e}"
        );
        assert!(matches!(
            parse("#cloud-config-archive\n- a\n"),
            Err(CloudInitError::NotCloudConfig { .. })
        ));
    }

    #[test]
    fn permissions_like_decode_perms() {
        let mode = |p: &str| file(&format!("- path: /a\n  permissions: {p}\n")).and_then(|f| f.mode());
        assert_eq!(mode("'0640'").unwrap(), 0o640);
        // Unquoted, YAML 1.1 reads 0640 as octal.
        assert_eq!(mode("0640").unwrap(), 0o640);
        assert_eq!(mode("'0o755'").unwrap(), 0o755);
        // An int is the mode itself: 420 == 0o644.
        assert_eq!(mode("420").unwrap(), 0o644);
        assert_eq!(file("- path: /a\n").unwrap().mode().unwrap(), 0o644);
        for bad in ["'0999'", "'rw-r--r--'", "'-1'", "true", "99999"] {
            let e = mode(bad).unwrap_err();
            assert!(matches!(e, CloudInitError::Yaml { line: Some(_), .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn booleans_and_encodings() {
        let f = file("- path: /a\n  append: 'yes'\n  defer: on\n  encoding: ' GZ+B64 '\n").unwrap();
        assert!(f.append && f.defer);
        assert_eq!(f.encoding, Encoding::GzipBase64);
        let f = file("- path: /a\n  append: 'y'\n").unwrap();
        assert!(!f.append);
        let c = parse("#cloud-config\nwrite_files:\n- path: /a\n  encoding: base32\n").unwrap();
        assert_eq!(c.write_files[0].encoding, Encoding::Text);
        assert!(
            c.warnings[0].contains("Unknown encoding type base32"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn binary_content() {
        // "hi" as a YAML !!binary scalar.
        let f = file("- path: /a\n  content: !!binary |\n    aGk=\n").unwrap();
        assert!(f.binary);
        assert_eq!(f.decode().unwrap(), b"hi");
    }

    #[test]
    fn shapes_that_crash_cloud_init_modules() {
        for (yaml, needle) in [
            ("write_files: {path: /a}\n", "list of files"),
            ("write_files:\n- /a\n", "write_files entry"),
            ("write_files:\n- content: x\n", "no path"),
            ("write_files:\n- path: /a\n  content:\n", "a string"),
            ("write_files:\n- path: 7\n", "a string"),
            ("runcmd: ls\n", "list of commands"),
            ("runcmd:\n- 42\n", "a command"),
            ("runcmd:\n- [echo, [a]]\n", "scalar argument"),
        ] {
            let e = parse(&format!("#cloud-config\n{yaml}")).unwrap_err();
            let CloudInitError::Yaml { message, line, .. } = &e else {
                panic!("{yaml}: {e:?}")
            };
            assert!(message.contains(needle), "{yaml}: {message}");
            assert!(line.is_some(), "{yaml}: {e}");
        }
    }

    #[test]
    fn commands_and_other_keys() {
        let c = parse(
            "#cloud-config\nusers: [{name: a}]\nruncmd:\n- echo hi\n-\n- [kubeadm, init, --v, 5, true]\nbootcmd: [mkdir -p /x]\nntp: {}\n",
        )
        .unwrap();
        assert_eq!(
            c.runcmd,
            [
                Command::Shell("echo hi".into()),
                Command::Argv(vec![
                    "kubeadm".into(),
                    "init".into(),
                    "--v".into(),
                    "5".into(),
                    "True".into()
                ])
            ]
        );
        assert_eq!(c.bootcmd, [Command::Shell("mkdir -p /x".into())]);
        assert_eq!(c.other_keys, ["users", "ntp"]);
    }

    #[test]
    fn document_shapes() {
        // PyYAML's safe_load: a comment-only document is empty, a second document an error.
        assert_eq!(parse("#cloud-config\n# nothing\n").unwrap(), CloudConfig::default());
        assert!(parse("#cloud-config\na: 1\n---\nb: 2\n").is_err());
        assert!(matches!(
            parse("#cloud-config\n- a\n"),
            Err(CloudInitError::Yaml { .. })
        ));
        // Last duplicate wins, as in PyYAML.
        assert_eq!(
            parse("#cloud-config\nruncmd: [a]\nruncmd: [b]\n").unwrap().runcmd,
            [Command::Shell("b".into())]
        );
    }

    #[test]
    fn broken_yaml_has_a_location() {
        let e = parse("#cloud-config\nwrite_files:\n- path: /a\n   content: [\n").unwrap_err();
        assert!(matches!(e, CloudInitError::Yaml { line: Some(_), .. }), "{e:?}");
    }
}
