//! AK/SK request signing for Huawei Cloud Stack (`SDK-HMAC-SHA256`, the API-gateway scheme the
//! Huawei Cloud SDKs use): a canonical request over the method, path, query, the signed headers
//! and the body's SHA-256, hashed into a string to sign, HMAC-SHA256'd with the secret key.
//!
//! Written here rather than taken from a crate: no maintained Rust crate implements this scheme
//! (the Huawei SDKs exist for Go, Java and Python only); it is a few pure functions, checked
//! byte for byte against the Go SDK's own test vectors.

use capstan_cloudkit::hex;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The signing algorithm's name, first word of the `Authorization` header and of the string to sign.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// The header carrying the signing time, `YYYYMMDDTHHMMSSZ` in UTC.
pub const DATE_HEADER: &str = "X-Sdk-Date";

/// What of a request the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The URL path, unescaped (`/v1/<project>/cloudservers`).
    pub path: &'a str,
    /// Query parameters, unescaped, in any order.
    pub query: &'a [(&'a str, &'a str)],
    /// Every header the request will carry, `X-Sdk-Date` among them.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The result of signing: what goes into the `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `;`-joined lowercase names of the signed headers.
    pub signed_headers: String,
    /// Lowercase hex HMAC-SHA256.
    pub signature: String,
}

impl Signature {
    /// `SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<h1;h2>, Signature=<hex>`.
    pub fn authorization(&self, access_key: &str) -> String {
        format!(
            "{ALGORITHM} Access={access_key}, SignedHeaders={}, Signature={}",
            self.signed_headers, self.signature
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("the request has no {DATE_HEADER} header to sign with")]
    NoDate,
    #[error("header {0} is not text and cannot be signed")]
    Header(String),
    #[error("a streamed request body cannot be signed: its SHA-256 is needed up front")]
    StreamingBody,
}

/// Signs `req` with the secret key `secret_key`.
pub fn sign(req: &RequestParts<'_>, secret_key: &[u8]) -> Result<Signature, SignError> {
    let date = header(req.headers, DATE_HEADER).ok_or(SignError::NoDate)?;
    let names = signed_header_names(req.headers);
    let canonical = canonical_request(req, &names);
    let string_to_sign = format!("{ALGORITHM}\n{date}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key).expect("HMAC takes a key of any length");
    mac.update(string_to_sign.as_bytes());
    Ok(Signature {
        signed_headers: names.join(";"),
        signature: hex(&mac.finalize().into_bytes()),
    })
}

/// Signs a request about to be sent: adds `X-Sdk-Date` (from `now`) and `Authorization`, over
/// every header it carries by then. `Host` is not among them (hyper adds it on the wire), as with
/// the Huawei Cloud SDKs.
pub fn sign_request(
    req: &mut reqwest::Request,
    access_key: &str,
    secret_key: &[u8],
    now: std::time::SystemTime,
) -> Result<(), SignError> {
    let date = chrono::DateTime::<chrono::Utc>::from(now)
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    req.headers_mut().insert(
        DATE_HEADER,
        reqwest::header::HeaderValue::from_str(&date).expect("a formatted date is ASCII"),
    );
    let url = req.url().clone();
    let path = percent_encoding::percent_decode_str(url.path())
        .decode_utf8_lossy()
        .to_string();
    let query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| {
            v.to_str()
                .map(|v| (n.as_str(), v))
                .map_err(|_| SignError::Header(n.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let body = match req.body() {
        None => &[][..],
        Some(b) => b.as_bytes().ok_or(SignError::StreamingBody)?,
    };
    let signature = sign(
        &RequestParts {
            method: req.method().as_str(),
            path: &path,
            query: &query,
            headers: &headers,
            body,
        },
        secret_key,
    )?;
    let authorization = reqwest::header::HeaderValue::from_str(&signature.authorization(access_key))
        .map_err(|_| SignError::Header("authorization".into()))?;
    req.headers_mut().insert(reqwest::header::AUTHORIZATION, authorization);
    Ok(())
}

fn header<'a>(headers: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Every header name, lowercased, sorted and deduplicated, except `content-type` and names with
/// an underscore (which proxies drop, so the newest SDK leaves them out).
fn signed_header_names(headers: &[(&str, &str)]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| n != "content-type" && !n.contains('_'))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn canonical_request(req: &RequestParts<'_>, names: &[String]) -> String {
    let mut uri: String = req.path.split('/').map(escape).collect::<Vec<_>>().join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    let mut query: Vec<(String, String)> = req.query.iter().map(|(k, v)| (escape(k), escape(v))).collect();
    query.sort();
    let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let headers: String = names
        .iter()
        .map(|n| {
            let values: Vec<&str> = req
                .headers
                .iter()
                .filter(|(h, _)| h.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.trim())
                .collect();
            format!("{n}:{}\n", values.join(","))
        })
        .collect();
    format!(
        "{}\n{uri}\n{}\n{headers}\n{}\n{}",
        req.method,
        query.join("&"),
        names.join(";"),
        hex(&Sha256::digest(req.body))
    )
}

/// Percent-encodes everything but the unreserved characters (RFC 3986 §2.3), as the SDKs do.
fn escape(s: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: (&str, &str) = (DATE_HEADER, "20060102T150405Z");

    /// The Go SDK's `signer_test.go` vectors (AK `AccessKey`, SK `SecretKey`), byte for byte.
    #[test]
    fn go_sdk_vectors() {
        let get = RequestParts {
            method: "GET",
            path: "/path",
            query: &[("limit", "1")],
            headers: &[DATE, ("TEST_UNDERSCORE", "value")],
            body: b"",
        };
        let s = sign(&get, b"SecretKey").unwrap();
        assert_eq!(s.signed_headers, "x-sdk-date");
        assert_eq!(
            s.signature,
            "5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"
        );
        assert_eq!(
            s.authorization("AccessKey"),
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"
        );

        let post = RequestParts {
            method: "POST",
            path: "/path",
            query: &[("key", "value")],
            headers: &[DATE, ("Content-Type", "application/json"), ("TEST_UNDERSCORE", "value")],
            body: b"{\"Name\":\"test\",\"Id\":1}\n",
        };
        let s = sign(&post, b"SecretKey").unwrap();
        assert_eq!(s.signed_headers, "x-sdk-date");
        assert_eq!(
            s.signature,
            "cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59"
        );
    }

    #[test]
    fn what_the_signature_covers() {
        let base = RequestParts {
            method: "GET",
            path: "/v1/p/cloudservers/detail",
            query: &[("name", "a b"), ("limit", "10")],
            headers: &[DATE, ("X-Project-Id", "p"), ("Host", "ecs.example")],
            body: b"",
        };
        let s = sign(&base, b"k").unwrap();
        assert_eq!(s.signed_headers, "host;x-project-id;x-sdk-date");
        // Query order does not matter; header name case does not matter.
        let reordered = RequestParts {
            query: &[("limit", "10"), ("name", "a b")],
            headers: &[("x-project-id", "p"), DATE, ("host", "ecs.example")],
            ..base
        };
        assert_eq!(sign(&reordered, b"k").unwrap(), s);
        // Path, query values, bodies and keys do.
        for changed in [
            RequestParts {
                path: "/v1/p/cloudservers",
                ..base
            },
            RequestParts {
                query: &[("name", "a+b"), ("limit", "10")],
                ..base
            },
            RequestParts { body: b"{}", ..base },
        ] {
            assert_ne!(sign(&changed, b"k").unwrap().signature, s.signature);
        }
        assert_ne!(sign(&base, b"other").unwrap().signature, s.signature);
        let undated = RequestParts {
            headers: &[("Host", "ecs.example")],
            ..base
        };
        assert_eq!(sign(&undated, b"k"), Err(SignError::NoDate));
    }

    #[test]
    fn escaping_is_rfc_3986_unreserved() {
        assert_eq!(escape("a b/c~d_e.f-g"), "a%20b%2Fc~d_e.f-g");
        assert_eq!(escape("ü"), "%C3%BC");
    }
}
