//! What an infrastructure provider does with an Ignition bootstrap document before a guest gets
//! it: read its spec version, wrap it in a parent config that adds what only the provider knows
//! (the hostname, the instance's identity, a static address), or shrink it into a stub whose
//! `config.replace` carries the whole document gzip-compressed when the cloud's user-data field
//! is too small.
//!
//! Both wrappers rely on Ignition's own mechanisms rather than editing the user's document:
//! `config.merge` merges the child over the parent (so a file the bootstrap document writes at
//! the same path wins), and `config.replace` swaps the stub for the real config before anything
//! is applied. Both take `data:` URLs and, from spec 3.1.0, `compression: gzip`.

use std::io::Write;

use base64::Engine;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnitionError {
    #[error("the bootstrap data says format ignition but is not a JSON object")]
    NotJson,
    #[error("the Ignition config has no ignition.version")]
    NoVersion,
    #[error("Ignition spec {0} cannot be delivered here: {1}")]
    Unsupported(String, &'static str),
}

/// An Ignition spec version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpecVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl std::fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The spec version a document declares.
pub fn spec_version(doc: &[u8]) -> Result<SpecVersion, IgnitionError> {
    let value: Value = serde_json::from_slice(doc).map_err(|_| IgnitionError::NotJson)?;
    if !value.is_object() {
        return Err(IgnitionError::NotJson);
    }
    let text = value["ignition"]["version"].as_str().ok_or(IgnitionError::NoVersion)?;
    // Ignition accepts `-experimental` only for the experimental spec; keep the suffix's
    // version numbers and let the guest's Ignition decide on the rest.
    let core = text.split('-').next().unwrap_or_default();
    let parts: Vec<u32> = core
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| IgnitionError::NoVersion)?;
    match parts[..] {
        [major, minor, patch] => Ok(SpecVersion { major, minor, patch }),
        _ => Err(IgnitionError::NoVersion),
    }
}

/// A file only the provider can write (it knows the instance once it exists).
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderFile {
    pub path: String,
    pub mode: u32,
    pub contents: Vec<u8>,
}

/// Contents may be credentials-adjacent (addresses, ids); `Debug` shows paths only.
impl std::fmt::Debug for ProviderFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderFile")
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("bytes", &self.contents.len())
            .finish()
    }
}

/// Where a provider tells an Ignition node who it is: Ignition has no template engine, so the
/// built-in MicroOS templates read this file (`EnvironmentFile=` of `kubeadm.service`).
pub const INSTANCE_ENV: &str = "/etc/capstan/instance.env";

/// `/etc/hostname` and [`INSTANCE_ENV`] (`CAPSTAN_INSTANCE_ID`, `CAPSTAN_HOSTNAME`,
/// `CAPSTAN_PROVIDER_ID`) for one node: what every provider adds to an Ignition config.
pub fn identity_files(instance_id: &str, hostname: &str, provider_id: &str) -> Vec<ProviderFile> {
    vec![
        ProviderFile {
            path: "/etc/hostname".into(),
            mode: 0o644,
            contents: format!("{hostname}\n").into_bytes(),
        },
        ProviderFile {
            path: INSTANCE_ENV.into(),
            mode: 0o644,
            contents: format!(
                "CAPSTAN_INSTANCE_ID={instance_id}\nCAPSTAN_HOSTNAME={hostname}\nCAPSTAN_PROVIDER_ID={provider_id}\n"
            )
            .into_bytes(),
        },
    ]
}

/// The file `path` that a parent config of [`with_provider_files`] writes, decoded; `None` when
/// `parent` is not such a config (it merges no document) or writes no such file. What a test or
/// a support engineer checks in what a provider delivered.
pub fn provider_file(parent: &[u8], path: &str) -> Option<Vec<u8>> {
    let parent: Value = serde_json::from_slice(parent).ok()?;
    parent["ignition"]["config"]["merge"][0]["source"]
        .as_str()?
        .strip_prefix("data:")?;
    let file = parent["storage"]["files"]
        .as_array()?
        .iter()
        .find(|f| f["path"] == path)?;
    let b64 = file["contents"]["source"].as_str()?.strip_prefix("data:;base64,")?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// A 3.x parent config, at the document's own version so any OS that takes the document takes
/// the parent, that writes `files` and merges the document over them.
pub fn with_provider_files(doc: &[u8], files: &[ProviderFile]) -> Result<Vec<u8>, IgnitionError> {
    let version = v3(doc, "the provider adds its files through config.merge, a 3.x feature")?;
    let files: Vec<Value> = files
        .iter()
        .map(|f| {
            json!({
                "path": f.path,
                "mode": f.mode,
                "overwrite": true,
                "contents": {"source": data_url(&f.contents)},
            })
        })
        .collect();
    let config = json!({
        "ignition": {"version": version.to_string(), "config": {"merge": [source(doc, version)]}},
        "storage": {"files": files},
    });
    Ok(serde_json::to_vec(&config).expect("a JSON value serialises"))
}

/// A stub at the document's version whose `config.replace` is the whole document, gzip-compressed
/// (from 3.1.0) in a `data:` URL.
pub fn replace_stub(doc: &[u8]) -> Result<Vec<u8>, IgnitionError> {
    let version = v3(doc, "the stub is a config.replace, a 3.x feature")?;
    let config = json!({"ignition": {"version": version.to_string(), "config": {"replace": source(doc, version)}}});
    Ok(serde_json::to_vec(&config).expect("a JSON value serialises"))
}

fn v3(doc: &[u8], why: &'static str) -> Result<SpecVersion, IgnitionError> {
    let version = spec_version(doc)?;
    if version.major != 3 {
        return Err(IgnitionError::Unsupported(version.to_string(), why));
    }
    Ok(version)
}

/// A config reference for merge/replace: gzip when the spec has `compression` (3.1.0+).
fn source(doc: &[u8], version: SpecVersion) -> Value {
    if version.minor >= 1 {
        json!({"source": data_url(&gzip(doc)), "compression": "gzip"})
    } else {
        json!({"source": data_url(doc)})
    }
}

/// RFC 2397 base64 `data:` URL with no media type, as Ignition reads it.
pub fn data_url(bytes: &[u8]) -> String {
    format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(url: &str) -> Vec<u8> {
        let b64 = url.strip_prefix("data:;base64,").expect("a base64 data URL");
        base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(b), &mut out).unwrap();
        out
    }

    #[test]
    fn versions_parse_and_2x_is_not_wrapped() {
        assert_eq!(
            spec_version(br#"{"ignition":{"version":"3.4.0"}}"#).unwrap(),
            SpecVersion {
                major: 3,
                minor: 4,
                patch: 0
            }
        );
        assert_eq!(spec_version(b"#cloud-config"), Err(IgnitionError::NotJson));
        assert_eq!(spec_version(b"{}"), Err(IgnitionError::NoVersion));
        let v2 = br#"{"ignition":{"version":"2.3.0"}}"#;
        assert!(matches!(replace_stub(v2), Err(IgnitionError::Unsupported(v, _)) if v == "2.3.0"));
    }

    #[test]
    fn the_parent_merges_the_document_over_the_provider_files() {
        let doc = br#"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/hostname"}]}}"#;
        let files = [ProviderFile {
            path: "/etc/hostname".into(),
            mode: 0o644,
            contents: b"cp-1\n".to_vec(),
        }];
        let out: Value = serde_json::from_slice(&with_provider_files(doc, &files).unwrap()).unwrap();
        assert_eq!(out["ignition"]["version"], "3.4.0");
        let merge = &out["ignition"]["config"]["merge"][0];
        assert_eq!(merge["compression"], "gzip");
        assert_eq!(gunzip(&decode(merge["source"].as_str().unwrap())), doc);
        assert_eq!(out["storage"]["files"][0]["mode"], 420);
        assert_eq!(
            decode(out["storage"]["files"][0]["contents"]["source"].as_str().unwrap()),
            b"cp-1\n"
        );
    }

    #[test]
    fn a_3_0_document_is_referenced_uncompressed() {
        let doc = br#"{"ignition":{"version":"3.0.0"}}"#;
        let out: Value = serde_json::from_slice(&replace_stub(doc).unwrap()).unwrap();
        let replace = &out["ignition"]["config"]["replace"];
        assert!(replace.get("compression").is_none());
        assert_eq!(decode(replace["source"].as_str().unwrap()), doc);
    }
}
