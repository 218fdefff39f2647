//! The NoCloud seed as cloud-init's `DataSourceNoCloud` finds it on a CD-ROM: a volume labelled
//! `cidata` (or `CIDATA`) with `user-data` and `meta-data` in its root, `network-config`
//! optional.
//!
//! Where cloud-init would quietly degrade (an unparsable meta-data becomes an empty mapping and
//! the instance-id falls back to `nocloud`), this reader fails: a simulated VM that boots with
//! the wrong identity hides the bug we want to see.

use capstan_iso::IsoError;

/// Labels cloud-init looks for: it asks blkid for `LABEL=CIDATA` and `LABEL=cidata`, both exact,
/// so a mixed-case label such as `CiData` is not found either.
const LABELS: [&str; 2] = ["cidata", "CIDATA"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoCloudError {
    #[error("the bootstrap volume is not a readable ISO 9660 image: {0}")]
    NotIso(String),
    #[error("volume label is {found:?}; cloud-init only looks for a NoCloud seed labelled \"cidata\" or \"CIDATA\"")]
    WrongLabel { found: String },
    #[error(
        "the NoCloud seed has no {name:?} file in its root directory (cloud-init requires user-data and meta-data)"
    )]
    MissingFile { name: &'static str },
    #[error("{name} is not UTF-8 text")]
    NotUtf8 { name: &'static str },
    #[error("meta-data is not valid YAML: {message}")]
    BadMetaData { message: String },
    #[error("meta-data must be a YAML mapping (instance-id: ..., local-hostname: ...), found {found}")]
    MetaDataNotMapping { found: &'static str },
}

impl From<IsoError> for NoCloudError {
    fn from(e: IsoError) -> Self {
        NoCloudError::NotIso(e.to_string())
    }
}

/// What the datasource hands to the rest of cloud-init.
#[derive(Clone, PartialEq)]
pub struct Seed {
    pub user_data: Vec<u8>,
    /// The parsed meta-data mapping, exactly as written (no defaults merged in: those belong to
    /// [`crate::cloudinit::InstanceData`]).
    pub meta_data: serde_json::Value,
    pub network_config: Option<String>,
}

/// The user data is bootstrap data (join tokens, private keys): `Debug` shows its size only.
impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seed")
            .field("user_data", &format_args!("<redacted, {} bytes>", self.user_data.len()))
            .field("meta_data", &self.meta_data)
            .field("network_config", &self.network_config)
            .finish()
    }
}

impl Seed {
    /// A meta-data string value, e.g. `instance-id` or `local-hostname`.
    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.meta_data.get(key).and_then(serde_json::Value::as_str)
    }
}

/// Reads a NoCloud seed from an ISO image.
pub fn read_seed(iso: &[u8]) -> Result<Seed, NoCloudError> {
    let contents = capstan_iso::read_iso(iso)?;
    if !LABELS.contains(&contents.volume_label.as_str()) {
        return Err(NoCloudError::WrongLabel {
            found: contents.volume_label,
        });
    }
    let user_data = contents
        .file("user-data")
        .ok_or(NoCloudError::MissingFile { name: "user-data" })?
        .to_vec();
    let meta_raw = contents
        .file("meta-data")
        .ok_or(NoCloudError::MissingFile { name: "meta-data" })?;
    let meta_text = std::str::from_utf8(meta_raw).map_err(|_| NoCloudError::NotUtf8 { name: "meta-data" })?;
    let meta_data = parse_meta_data(meta_text)?;
    let network_config = contents
        .file("network-config")
        .map(|b| String::from_utf8(b.to_vec()).map_err(|_| NoCloudError::NotUtf8 { name: "network-config" }))
        .transpose()?;
    Ok(Seed {
        user_data,
        meta_data,
        network_config,
    })
}

/// Parses meta-data the way PyYAML (YAML 1.1) would read it; an empty document is an empty
/// mapping.
pub fn parse_meta_data(text: &str) -> Result<serde_json::Value, NoCloudError> {
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    let value: serde_json::Value = serde_saphyr::from_str_with_options(text, crate::cloudinit::yaml11_options())
        .map_err(|e| NoCloudError::BadMetaData { message: e.to_string() })?;
    match value {
        serde_json::Value::Object(_) => Ok(value),
        serde_json::Value::Null => Ok(serde_json::Value::Object(Default::default())),
        other => Err(NoCloudError::MetaDataNotMapping {
            found: crate::cloudinit::json_kind(&other),
        }),
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    /// Issue 10 §1: the user data a guest read never shows in `Debug`.
    #[test]
    fn debug_hides_the_user_data() {
        let seed = Seed {
            user_data: b"token: abcdef.0123456789abcdef".to_vec(),
            meta_data: serde_json::json!({"instance-id": "i-1"}),
            network_config: None,
        };
        let shown = format!("{seed:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("i-1"), "{shown}");
    }
}
