//! vSphere guestinfo as the guest's agents read it: `guestinfo.<key>` plus
//! `guestinfo.<key>.encoding` (Ignition's `internal/providers/vmware`, cloud-init's
//! `DataSourceVMware`).

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine;

use crate::nocloud;

pub(crate) const IGNITION_DATA: &str = "guestinfo.ignition.config.data";
pub(crate) const IGNITION_ENCODING: &str = "guestinfo.ignition.config.data.encoding";
/// base64 of `{}\n`: what `ignition-delete-config.service` leaves behind.
pub(crate) const EMPTY_CONFIG: &str = "e30K";

/// Decodes a guestinfo value by its encoding, as Ignition's VMware provider does.
pub(crate) fn decode(data: &str, encoding: &str) -> Result<Vec<u8>, String> {
    let b64 = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| format!("invalid base64: {e}"))
    };
    let gunzip = |b: Vec<u8>| {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b.as_slice())
            .read_to_end(&mut out)
            .map(|_| out)
            .map_err(|e| format!("invalid gzip: {e}"))
    };
    match encoding {
        "" => Ok(data.as_bytes().to_vec()),
        "b64" | "base64" => b64(data),
        "gz" | "gzip" => gunzip(data.as_bytes().to_vec()),
        "gz+base64" | "gzip+base64" | "gz+b64" | "gzip+b64" => gunzip(b64(data)?),
        other => Err(format!("unsupported guestinfo encoding {other:?}")),
    }
}

fn key(keys: &BTreeMap<String, String>, name: &str) -> Result<Option<Vec<u8>>, String> {
    let Some(data) = keys.get(name) else { return Ok(None) };
    let encoding = keys.get(&format!("{name}.encoding")).map(String::as_str).unwrap_or("");
    decode(data, encoding).map(Some).map_err(|e| format!("{name}: {e}"))
}

/// The Ignition config guestinfo carries, if any.
pub(crate) fn ignition_config(keys: &BTreeMap<String, String>) -> Result<Option<Vec<u8>>, String> {
    key(keys, IGNITION_DATA)
}

/// The guestinfo after a provisioned boot: the config replaced by an empty one.
pub(crate) fn deleted_config(mut keys: BTreeMap<String, String>) -> BTreeMap<String, String> {
    keys.insert(IGNITION_DATA.into(), EMPTY_CONFIG.into());
    keys.insert(IGNITION_ENCODING.into(), "base64".into());
    keys
}

/// cloud-init's VMware datasource: `guestinfo.userdata` and `guestinfo.metadata`.
pub(crate) fn cloud_init_seed(keys: &BTreeMap<String, String>) -> Result<nocloud::Seed, String> {
    let user_data = key(keys, "guestinfo.userdata")?.ok_or("no guestinfo.userdata: cloud-init found no datasource")?;
    let meta = key(keys, "guestinfo.metadata")?.unwrap_or_default();
    let meta_text = String::from_utf8(meta).map_err(|_| "guestinfo.metadata is not UTF-8".to_string())?;
    Ok(nocloud::Seed {
        user_data,
        meta_data: nocloud::parse_meta_data(&meta_text).map_err(|e| e.to_string())?,
        network_config: None,
    })
}
