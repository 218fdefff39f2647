//! RFC 2397 `data:` URLs for Ignition `contents.source`: percent-encoded text, or gzip +
//! base64 with `compression: gzip` when that is shorter (certificates and scripts shrink by
//! about half, which matters under the 64 KiB user-data limits of the clouds).

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

/// RFC 3986 unreserved characters stay literal; everything else is escaped.
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The shortest `contents` object for these bytes: `{"source": ...}` plus `"compression": "gzip"`
/// when compressed.
pub fn contents(bytes: &[u8]) -> Value {
    let plain = match std::str::from_utf8(bytes) {
        Ok(text) => format!("data:,{}", utf8_percent_encode(text, ESCAPE)),
        Err(_) => format!("data:;base64,{}", STANDARD.encode(bytes)),
    };
    let gz = format!("data:;base64,{}", STANDARD.encode(gzip(bytes)));
    if gz.len() < plain.len() {
        json!({"compression": "gzip", "source": gz})
    } else {
        json!({"source": plain})
    }
}

/// gzip with the highest level and no timestamp, so the output is stable.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Bytes of a `files[]` content in the API's encoding (cloud-init decodes these on the node;
/// Ignition has no such field, so they are decoded here).
pub fn decode(content: &str, encoding: Option<crate::api::Encoding>) -> Result<Vec<u8>, String> {
    use crate::api::Encoding;
    let b64 = |s: &str| {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        STANDARD.decode(s).map_err(|e| format!("not valid base64: {e}"))
    };
    let gunzip = |b: Vec<u8>| {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&b[..]), &mut out)
            .map_err(|e| format!("not valid gzip: {e}"))?;
        Ok::<_, String>(out)
    };
    match encoding {
        None => Ok(content.as_bytes().to_vec()),
        Some(Encoding::Base64) => b64(content),
        Some(Encoding::Gzip) => gunzip(content.as_bytes().to_vec()),
        Some(Encoding::GzipBase64) => gunzip(b64(content)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_stays_plain_long_text_is_gzipped() {
        assert_eq!(contents(b"foo\n"), json!({"source": "data:,foo%0A"}));
        let long = "x".repeat(1000);
        assert_eq!(contents(long.as_bytes())["compression"], "gzip");
    }
}
