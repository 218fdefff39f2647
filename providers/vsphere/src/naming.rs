//! VM names from `spec.naming.template`: text around `{{ .machine.name }}` and
//! `{{ .cluster.name }}` (the subset of CAPV's Go templates that keeps a name stable: the VM is
//! found again by it after a crash, so it may not depend on anything that changes).

use crate::error::ProviderError;

/// vSphere allows 80 characters; the name is also the guest's host name (RFC 1123 label).
const MAX_LEN: usize = 63;

/// The VM name for `machine` of `cluster` under `template` (the machine's name when unset).
pub fn vm_name(template: Option<&str>, machine: &str, cluster: &str) -> Result<String, ProviderError> {
    let Some(template) = template else {
        return Ok(machine.to_string());
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| invalid(template, "an unclosed {{"))?;
        match after[..close].trim() {
            ".machine.name" => out.push_str(machine),
            ".cluster.name" => out.push_str(cluster),
            other => return Err(invalid(template, &format!("unknown field {other:?}"))),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    let label_ok = !out.is_empty()
        && out.len() <= MAX_LEN
        && out
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !out.starts_with(['-', '.'])
        && !out.ends_with(['-', '.']);
    if !label_ok {
        return Err(invalid(
            template,
            &format!("it gives {out:?}, not a host name of at most {MAX_LEN} characters"),
        ));
    }
    Ok(out)
}

fn invalid(template: &str, why: &str) -> ProviderError {
    ProviderError::Spec(format!("naming.template {template:?}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_templates() {
        assert_eq!(vm_name(None, "m1", "c1").unwrap(), "m1");
        assert_eq!(
            vm_name(Some("{{ .cluster.name }}-{{.machine.name}}"), "m1", "c1").unwrap(),
            "c1-m1"
        );
        assert_eq!(
            vm_name(Some("vm-{{ .machine.name }}.lab"), "m1", "c").unwrap(),
            "vm-m1.lab"
        );
        let long = "x".repeat(61);
        let e = vm_name(Some("{{ .cluster.name }}-{{ .machine.name }}"), &long, "c1").unwrap_err();
        assert!(e.to_string().contains("63"), "{e}");
        assert!(vm_name(Some("{{ .machine.uid }}"), "m", "c").is_err());
        assert!(vm_name(Some("{{ .machine.name "), "m", "c").is_err());
        assert!(vm_name(Some("-{{ .machine.name }}"), "m", "c").is_err());
    }
}
