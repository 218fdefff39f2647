//! Decoders with Python's leniency: cloud-init uses `base64.b64decode` (non-validating) and
//! `gzip.GzipFile`, so content that a strict decoder would reject can still boot a real VM, and
//! content Python rejects must fail here too.

use std::io::Read;

/// `base64.b64decode(s)` with `validate=False`, following CPython's `binascii.a2b_base64`:
/// characters outside the alphabet (newlines, spaces, junk) are skipped, a complete pad sequence
/// ends the input, and a dangling quantum is an error.
pub(crate) fn python_b64decode(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut quad_pos = 0u8;
    let mut left: u8 = 0;
    let mut pads = 0u8;
    for &c in input {
        if c == b'=' {
            if quad_pos >= 2 {
                pads += 1;
                if quad_pos + pads >= 4 {
                    return Ok(out);
                }
            }
            continue;
        }
        let Some(v) = sextet(c) else { continue };
        pads = 0;
        match quad_pos {
            0 => {
                left = v;
                quad_pos = 1;
            }
            1 => {
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
                quad_pos = 2;
            }
            2 => {
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
                quad_pos = 3;
            }
            _ => {
                out.push((left << 6) | v);
                left = 0;
                quad_pos = 0;
            }
        }
    }
    match quad_pos {
        0 => Ok(out),
        1 => Err(format!(
            "Invalid base64-encoded string: number of data characters ({}) cannot be 1 more than a multiple of 4",
            out.len() / 3 * 4 + 1
        )),
        _ => Err("Incorrect padding".into()),
    }
}

/// `b64decode` of a `str`: Python refuses non-ASCII text before decoding.
pub(crate) fn python_b64decode_str(input: &str) -> Result<Vec<u8>, String> {
    if !input.is_ascii() {
        return Err("string argument should contain only ASCII characters".into());
    }
    python_b64decode(input.as_bytes())
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Gunzips every member, as `gzip.GzipFile.read()` does.
pub(crate) fn gunzip(data: &[u8]) -> Result<Vec<u8>, String> {
    if !data.starts_with(&[0x1f, 0x8b]) {
        return Err(format!(
            "Not a gzipped file ({:?})",
            String::from_utf8_lossy(&data[..data.len().min(2)])
        ));
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

pub(crate) fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_like_python() {
        assert_eq!(python_b64decode(b"aGVsbG8=").unwrap(), b"hello");
        // Whitespace and line breaks are skipped, as in a YAML block scalar.
        assert_eq!(python_b64decode(b"aGVs\n bG8=\n").unwrap(), b"hello");
        // Data after a complete pad sequence is ignored.
        assert_eq!(python_b64decode(b"YQ==YQ==").unwrap(), b"a");
        // Excess padding is fine, missing padding is not.
        assert_eq!(python_b64decode(b"YQ===").unwrap(), b"a");
        assert_eq!(python_b64decode(b"YQ").unwrap_err(), "Incorrect padding");
        assert!(
            python_b64decode(b"YWJjZ")
                .unwrap_err()
                .contains("1 more than a multiple of 4")
        );
        // Junk is skipped: "not base64!" is "notbase64", nine characters.
        assert_eq!(
            python_b64decode(b"not base64!").unwrap_err(),
            "Invalid base64-encoded string: number of data characters (9) cannot be 1 more than a multiple of 4"
        );
        assert_eq!(
            python_b64decode(b"this is not base64!").unwrap_err(),
            "Incorrect padding"
        );
        assert!(python_b64decode_str("aGVsbG8=é").is_err());
    }

    #[test]
    fn gunzip_multi_member_and_garbage() {
        use std::io::Write;
        let gz = |s: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(s).unwrap();
            e.finish().unwrap()
        };
        let mut two = gz(b"ab");
        two.extend(gz(b"cd"));
        assert_eq!(gunzip(&two).unwrap(), b"abcd");
        assert!(gunzip(b"plain text").unwrap_err().contains("Not a gzipped file"));
    }
}
