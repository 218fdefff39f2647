//! Conversions between VRM URNs (`urn:sites:S:vms:i-1`) and URIs (`/service/sites/S/vms/i-1`).

/// `urn:sites:S:vms:i-1` → `/service/sites/S/vms/i-1`.
pub fn urn_to_uri(urn: &str) -> Option<String> {
    let rest = urn.strip_prefix("urn:")?;
    if rest.is_empty() {
        return None;
    }
    Some(format!("/service/{}", rest.replace(':', "/")))
}

/// `/service/sites/S/vms/i-1` → `urn:sites:S:vms:i-1`.
pub fn uri_to_urn(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("/service/")?;
    if rest.is_empty() {
        return None;
    }
    Some(format!("urn:{}", rest.trim_end_matches('/').replace('/', ":")))
}

/// The last component of a URN or URI (`i-0000027D`, `1234`).
pub fn id_of(urn_or_uri: &str) -> &str {
    urn_or_uri.rsplit([':', '/']).next().unwrap_or(urn_or_uri)
}

/// Turns a URN, a URI or a bare id of kind `kind` in `site` into a URI.
pub fn to_uri(site: &str, kind: &str, any: &str) -> String {
    if any.starts_with("urn:")
        && let Some(uri) = urn_to_uri(any)
    {
        return uri;
    }
    if any.starts_with("/service/") {
        return any.to_string();
    }
    format!("/service/sites/{site}/{kind}/{any}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let urn = "urn:sites:39A107AF:dvswitchs:3:portgroups:6";
        let uri = urn_to_uri(urn).unwrap();
        assert_eq!(uri, "/service/sites/39A107AF/dvswitchs/3/portgroups/6");
        assert_eq!(uri_to_urn(&uri).unwrap(), urn);
        assert_eq!(id_of("urn:sites:3F7B07E2:vms:i-0000027D"), "i-0000027D");
        assert_eq!(id_of("/service/sites/S/tasks/12"), "12");
        assert_eq!(to_uri("S", "vms", "i-1"), "/service/sites/S/vms/i-1");
        assert_eq!(to_uri("S", "vms", "urn:sites:S:vms:i-1"), "/service/sites/S/vms/i-1");
        assert_eq!(
            to_uri("S", "vms", "/service/sites/S/vms/i-1"),
            "/service/sites/S/vms/i-1"
        );
        assert_eq!(urn_to_uri("urn:"), None);
    }
}
