//! The simulator's own AK/SK verifier: it rebuilds the canonical request from what arrived,
//! over the headers the `Authorization` header says were signed, and compares signatures in
//! constant time. Independent of the client's signer on purpose.

use axum::http::{HeaderMap, Uri};
use capstan_simkit::hex;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::SimConfig;

struct Claimed<'a> {
    access: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Claimed<'_>> {
    let rest = value.strip_prefix("SDK-HMAC-SHA256 ")?;
    let mut access = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Access" => access = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    Some(Claimed {
        access: access?,
        signed_headers: signed?.split(';').filter(|s| !s.is_empty()).collect(),
        signature: signature?,
    })
}

/// Why a request fails verification, in the gateway's words where they are known.
pub fn verify(
    config: &SimConfig,
    method: &str,
    uri: &Uri,
    h: &HeaderMap,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    let claimed = header("authorization")
        .and_then(parse_authorization)
        .ok_or("no AK/SK Authorization header")?;
    if claimed.access != config.access_key {
        return Err("the access key does not exist".into());
    }
    let date = header("x-sdk-date").ok_or("no X-Sdk-Date header")?;
    let at = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| format!("X-Sdk-Date {date:?} is not YYYYMMDDTHHMMSSZ"))?
        .and_utc();
    let skew = (now - at).num_seconds().unsigned_abs();
    if skew > config.max_clock_skew.as_secs() {
        return Err(format!("X-Sdk-Date is {skew} s away from the gateway's clock"));
    }
    if !claimed.signed_headers.contains(&"x-sdk-date") {
        return Err("X-Sdk-Date is not among the signed headers".into());
    }
    let mut canonical_headers = String::new();
    for name in &claimed.signed_headers {
        let values: Vec<&str> = h
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        if values.is_empty() {
            return Err(format!("signed header {name} is not in the request"));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let canonical = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{}\n{}",
        canonical_uri(uri.path()),
        canonical_query(uri.query().unwrap_or("")),
        claimed.signed_headers.join(";"),
        hex(&Sha256::digest(body))
    );
    let string_to_sign = format!(
        "SDK-HMAC-SHA256\n{date}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(config.secret_key.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(string_to_sign.as_bytes());
    let expected = unhex(claimed.signature).ok_or("the signature is not hex")?;
    mac.verify_slice(&expected)
        .map_err(|_| "verify aksk signature fail".to_string())
}

/// The path as sent, each segment decoded and re-encoded the canonical way, ending in `/`.
fn canonical_uri(raw: &str) -> String {
    let mut uri = raw
        .split('/')
        .map(|seg| encode(&percent_encoding::percent_decode_str(seg).decode_utf8_lossy()))
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .to_string()
            };
            (encode(&decode(k)), encode(&decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 unreserved characters stay, everything else is `%XX` (uppercase).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Go SDK's vectors, checked from the verifier's side (its own implementation).
    #[test]
    fn accepts_the_go_sdk_vectors_and_nothing_else() {
        let config = SimConfig {
            access_key: "AccessKey".into(),
            secret_key: "SecretKey".into(),
            max_clock_skew: std::time::Duration::from_secs(60),
            ..SimConfig::default()
        };
        let now = chrono::NaiveDateTime::parse_from_str("20060102T150405Z", "%Y%m%dT%H%M%SZ")
            .unwrap()
            .and_utc();
        let mut h = HeaderMap::new();
        h.insert("x-sdk-date", "20060102T150405Z".parse().unwrap());
        h.insert("test_underscore", "value".parse().unwrap());
        h.insert(
            "authorization",
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"
                .parse()
                .unwrap(),
        );
        let uri: Uri = "/path?limit=1".parse().unwrap();
        assert_eq!(verify(&config, "GET", &uri, &h, b"", now), Ok(()));
        assert!(verify(&config, "GET", &"/path?limit=2".parse().unwrap(), &h, b"", now).is_err());
        assert!(verify(&config, "POST", &uri, &h, b"", now).is_err());
        let later = now + chrono::Duration::minutes(5);
        assert!(
            verify(&config, "GET", &uri, &h, b"", later)
                .unwrap_err()
                .contains("away from")
        );

        h.insert("content-type", "application/json".parse().unwrap());
        h.insert(
            "authorization",
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59"
                .parse()
                .unwrap(),
        );
        let body = b"{\"Name\":\"test\",\"Id\":1}\n";
        assert_eq!(
            verify(&config, "POST", &"/path?key=value".parse().unwrap(), &h, body, now),
            Ok(())
        );
        assert!(verify(&config, "POST", &"/path?key=value".parse().unwrap(), &h, b"{}", now).is_err());
    }
}
