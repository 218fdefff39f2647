//! Parsing: JSON, `ignition.version` against what the image's Ignition accepts (Flatcar
//! translates 2.x), the typed config, and rendering (`config.replace`, then `config.merge`
//! depth-first, as `internal/exec/engine.go` `renderConfig` does).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::dataurl::{self, Resource};
use super::{IgnitionError, Result, merge, validate};
use crate::os::GuestOs;

/// How deep `config.merge`/`replace` may nest before we call it a loop.
const MAX_DEPTH: usize = 10;

/// `null` and absent both mean the default (ignition-config-rs writes literal nulls).
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> std::result::Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct Config {
    #[serde(deserialize_with = "nullable")]
    pub ignition: Ignition,
    #[serde(deserialize_with = "nullable")]
    pub storage: Storage,
    #[serde(deserialize_with = "nullable")]
    pub systemd: Systemd,
    #[serde(deserialize_with = "nullable")]
    pub passwd: Passwd,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct Ignition {
    pub version: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub config: ConfigRefs,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct ConfigRefs {
    #[serde(deserialize_with = "nullable")]
    pub merge: Vec<Source>,
    pub replace: Option<Source>,
}

/// A resource reference. Its `source` is bootstrap data (keys, tokens): `Debug` hides it.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct Source {
    pub source: Option<String>,
    pub compression: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub verification: Verification,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field(
                "source",
                &self.source.as_ref().map(|s| format!("<redacted, {} chars>", s.len())),
            )
            .field("compression", &self.compression)
            .finish()
    }
}

impl Source {
    /// The resource to read, or `None` when the source is unset (nothing to fetch).
    pub fn resource(&self) -> Option<Resource<'_>> {
        Some(Resource {
            source: self.source.as_deref()?,
            compression: self.compression.as_deref(),
            hash: self.verification.hash.as_deref(),
        })
    }
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(default)]
pub struct Verification {
    pub hash: Option<String>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(default)]
pub struct Storage {
    #[serde(deserialize_with = "nullable")]
    pub files: Vec<File>,
    #[serde(deserialize_with = "nullable")]
    pub directories: Vec<Directory>,
    #[serde(deserialize_with = "nullable")]
    pub links: Vec<Link>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(default)]
pub struct File {
    pub path: String,
    pub overwrite: Option<bool>,
    pub mode: Option<i64>,
    pub contents: Option<Source>,
    #[serde(deserialize_with = "nullable")]
    pub append: Vec<Source>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(default)]
pub struct Directory {
    pub path: String,
    pub overwrite: Option<bool>,
    pub mode: Option<i64>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(default)]
pub struct Link {
    pub path: String,
    pub overwrite: Option<bool>,
    pub target: Option<String>,
    pub hard: Option<bool>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(default)]
pub struct Systemd {
    #[serde(deserialize_with = "nullable")]
    pub units: Vec<Unit>,
}

/// Unit contents can carry credentials (`Environment=`): `Debug` shows names only.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct Unit {
    pub name: String,
    pub enabled: Option<bool>,
    pub mask: Option<bool>,
    pub contents: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub dropins: Vec<Dropin>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct Dropin {
    pub name: String,
    pub contents: Option<String>,
}

impl std::fmt::Debug for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unit")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("mask", &self.mask)
            .field("contents", &self.contents.as_ref().map(String::len))
            .field("dropins", &self.dropins.iter().map(|d| &d.name).collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(default)]
pub struct Passwd {
    #[serde(deserialize_with = "nullable")]
    pub users: Vec<User>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct User {
    pub name: String,
    pub home_dir: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub ssh_authorized_keys: Vec<String>,
}

/// A config ready for the files stage.
pub struct Rendered {
    pub config: Config,
    /// The spec minor version of the top-level config (3.x after translation).
    pub minor: u32,
    pub warnings: Vec<String>,
}

/// Parses and renders what the platform handed over. `Ok(None)` is Ignition's `ErrEmpty`: no
/// config at all, so the machine boots without one and never bootstraps.
pub fn render(bytes: &[u8], os: GuestOs) -> Result<Option<Rendered>> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let mut warnings = Vec::new();
    let (value, minor) = render_value(bytes, os, 0, &mut warnings)?;
    let config = typed(value)?;
    // The merged whole must still hold together (a child's file on a parent's unit path).
    validate::check(&config, minor, &mut Vec::new())?;
    Ok(Some(Rendered {
        config,
        minor,
        warnings,
    }))
}

fn typed(value: Value) -> Result<Config> {
    serde_json::from_value(value).map_err(|e| IgnitionError::Schema(e.to_string()))
}

fn render_value(bytes: &[u8], os: GuestOs, depth: usize, warnings: &mut Vec<String>) -> Result<(Value, u32)> {
    if depth > MAX_DEPTH {
        return Err(IgnitionError::Schema("config.merge/replace nest too deep".into()));
    }
    let (value, minor) = parse(bytes, os)?;
    let config = typed(value.clone())?;
    validate::check(&config, minor, warnings)?;
    let refs = &config.ignition.config;
    if let Some(r) = refs.replace.as_ref().and_then(Source::resource) {
        let child = dataurl::fetch("ignition.config.replace", r)?;
        return render_value(&child, os, depth + 1, warnings);
    }
    let mut out = value;
    for (i, m) in refs.merge.iter().enumerate() {
        let Some(r) = m.resource() else { continue };
        let child = dataurl::fetch(&format!("ignition.config.merge[{i}]"), r)?;
        let (child, _) = render_value(&child, os, depth + 1, warnings)?;
        out = merge::merge(out, child);
    }
    Ok((out, minor))
}

/// JSON and version; a 2.x config comes back translated to 3.0 on an image that translates.
fn parse(bytes: &[u8], os: GuestOs) -> Result<(Value, u32)> {
    if bytes.is_empty() {
        return Err(IgnitionError::NotJson("a referenced config is empty".into()));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| IgnitionError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(IgnitionError::NotJson("the config is not a JSON object".into()));
    }
    let version = value["ignition"]["version"]
        .as_str()
        .ok_or(IgnitionError::MissingVersion)?
        .to_string();
    let accepted = if os.translates_v2() {
        "3.0.0 to 3.5.0, and 2.0.0 to 2.3.0 translated"
    } else {
        "3.0.0 to 3.5.0"
    };
    let unsupported = || IgnitionError::UnsupportedVersion {
        version: version.clone(),
        os: os.as_str(),
        accepted,
    };
    let parts: Vec<u32> = version
        .split('.')
        .map(|p| {
            p.parse()
                .ok()
                .filter(|_| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect::<Option<_>>()
        .ok_or_else(unsupported)?;
    match parts[..] {
        [3, minor, 0] if minor <= os.max_v3_minor() => Ok((value, minor)),
        [2, minor, 0] if minor <= 3 && os.translates_v2() => Ok((translate_v2(value)?, 0)),
        _ => Err(unsupported()),
    }
}

/// Flatcar's runtime translation of a 2.x config to 3.0 (ign-converter): filesystems are gone
/// (only `root` translates), 2.x files always overwrote and `append: true` becomes an `append`
/// list, `config.append` becomes `config.merge`, `networkd` is dropped.
fn translate_v2(mut v: Value) -> Result<Value> {
    v["ignition"]["version"] = "3.0.0".into();
    if let Some(cfg) = v["ignition"].get_mut("config").and_then(Value::as_object_mut)
        && let Some(append) = cfg.remove("append")
    {
        cfg.insert("merge".into(), append);
    }
    if let Some(obj) = v.as_object_mut() {
        obj.remove("networkd");
    }
    if let Some(storage) = v.get_mut("storage").and_then(Value::as_object_mut) {
        storage.remove("filesystems");
        storage.remove("disks");
        for list in ["files", "directories", "links"] {
            for e in storage
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                translate_entry(e, list == "files")?;
            }
        }
    }
    Ok(v)
}

fn translate_entry(e: &mut Value, file: bool) -> Result<()> {
    let Some(obj) = e.as_object_mut() else { return Ok(()) };
    match obj.remove("filesystem").as_ref().and_then(Value::as_str) {
        None | Some("root") => {}
        Some(other) => {
            return Err(IgnitionError::Schema(format!(
                "spec 2.x filesystem {other:?} cannot be translated to 3.x (only \"root\")"
            )));
        }
    }
    if !file {
        return Ok(());
    }
    if obj.remove("append").and_then(|a| a.as_bool()) == Some(true) {
        let contents = obj.remove("contents").unwrap_or(Value::Null);
        obj.insert("append".into(), Value::Array(vec![contents]));
    } else {
        obj.entry("overwrite").or_insert(Value::Bool(true));
    }
    Ok(())
}
