//! Ignition's resources: a `source` URL (only RFC 2397 `data:` URLs can be read in the
//! simulator), an optional `compression` and `verification.hash` over the decompressed bytes
//! (`config/v3_*/types/url.go`, `resource.go`; `internal/resource/url.go`).

use std::io::Read;

use base64::Engine;
use sha2::Digest;

use super::{IgnitionError, Result};

/// Schemes Ignition knows but that need a network the simulated initramfs does not have.
const NETWORK_SCHEMES: [&str; 6] = ["http", "https", "tftp", "s3", "arn", "gs"];

/// Decodes a `data:` URL strictly, as `dataurl.DecodeString` does: a media type (optional), an
/// optional `;base64`, a comma, then percent-encoded (or base64) data.
pub fn decode(url: &str) -> std::result::Result<Vec<u8>, String> {
    let rest = url.strip_prefix("data:").ok_or("not a data: URL")?;
    let (header, data) = rest.split_once(',').ok_or("missing ',' before the data")?;
    let mut params = header.split(';');
    let media = params.next().unwrap_or_default();
    if !media.is_empty() && !is_media_type(media) {
        return Err(format!("invalid media type {media:?}"));
    }
    let mut base64 = false;
    for p in params {
        match p.split_once('=') {
            _ if p == "base64" => base64 = true,
            Some((k, v)) if !k.is_empty() && !v.is_empty() && !base64 => {}
            _ => return Err(format!("invalid parameter {p:?}")),
        }
    }
    let bytes = percent_decode(data)?;
    if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(&bytes)
            .map_err(|e| format!("invalid base64: {e}"))
    } else {
        Ok(bytes)
    }
}

fn is_media_type(m: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    m.split_once('/').is_some_and(|(t, s)| token(t) && token(s))
}

fn percent_decode(s: &str) -> std::result::Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let v = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent escape at offset {i}"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A resource as a config names it.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub source: &'a str,
    pub compression: Option<&'a str>,
    pub hash: Option<&'a str>,
}

/// Checks a resource's URL and compression without reading it (the validation pass).
pub fn check(what: &str, r: Resource<'_>) -> Result<()> {
    let scheme = r.source.split_once(':').map(|(s, _)| s).unwrap_or_default();
    match scheme {
        "data" => decode(r.source).map(|_| ()).map_err(|reason| IgnitionError::DataUrl {
            what: what.into(),
            reason,
        })?,
        s if NETWORK_SCHEMES.contains(&s) => {}
        s => {
            return Err(IgnitionError::UnknownScheme {
                what: what.into(),
                scheme: s.into(),
            });
        }
    }
    match r.compression {
        None | Some("") | Some("gzip") => {}
        Some(other) => {
            return Err(IgnitionError::Compression {
                what: what.into(),
                value: other.into(),
            });
        }
    }
    if let Some(h) = r.hash {
        parse_hash(what, h)?;
    }
    Ok(())
}

/// Reads a resource: decode, gunzip, verify.
pub fn fetch(what: &str, r: Resource<'_>) -> Result<Vec<u8>> {
    check(what, r)?;
    let scheme = r.source.split_once(':').map(|(s, _)| s).unwrap_or_default();
    if scheme != "data" {
        return Err(IgnitionError::UnfetchableScheme {
            what: what.into(),
            scheme: scheme.into(),
        });
    }
    let raw = decode(r.source).map_err(|reason| IgnitionError::DataUrl {
        what: what.into(),
        reason,
    })?;
    let data = if r.compression == Some("gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| IgnitionError::Gzip {
                what: what.into(),
                message: e.to_string(),
            })?;
        out
    } else {
        raw
    };
    if let Some(h) = r.hash {
        verify(what, h, &data)?;
    }
    Ok(data)
}

fn parse_hash<'h>(what: &str, h: &'h str) -> Result<(&'h str, &'h str)> {
    let bad = || IgnitionError::BadHash {
        what: what.into(),
        hash: h.into(),
    };
    let (func, hex) = h.split_once('-').ok_or_else(bad)?;
    let len = match func {
        "sha512" => 128,
        "sha256" => 64,
        _ => return Err(bad()),
    };
    if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok((func, hex))
}

fn verify(what: &str, h: &str, data: &[u8]) -> Result<()> {
    let (func, expected) = parse_hash(what, h)?;
    let actual: String = match func {
        "sha512" => sha2::Sha512::digest(data).iter().map(|b| format!("{b:02x}")).collect(),
        _ => sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect(),
    };
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(IgnitionError::HashMismatch {
            what: what.into(),
            expected: format!("{func}-{expected}"),
            actual: format!("{func}-{actual}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_decode() {
        assert_eq!(decode("data:,foo%0A").unwrap(), b"foo\n");
        assert_eq!(decode("data:;base64,Zm9vCg==").unwrap(), b"foo\n");
        assert_eq!(
            decode("data:text/plain;charset=utf-8;base64,Zm9vCg==").unwrap(),
            b"foo\n"
        );
        for bad in [
            "data:foo",
            "data:,%zz",
            "data:,%4",
            "data:;base64,Zm9v!",
            "data:bad;base64,x",
            "x:,a",
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
