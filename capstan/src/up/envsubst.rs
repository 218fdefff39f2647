//! clusterctl's variable substitution (drone/envsubst as clusterctl uses it): `${VAR}`,
//! `${VAR:=default}`, `${VAR:-default}`, `${VAR=default}`, `${VAR-default}` and `$$` for a
//! literal `$`. A variable without a value and without a default is an error that names every
//! missing variable at once, as `clusterctl generate cluster` reports them.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubstError {
    #[error("value for variables [{}] is not set", .0.iter().cloned().collect::<Vec<_>>().join(", "))]
    Missing(BTreeSet<String>),
    #[error("unterminated ${{ at byte {0}")]
    Unterminated(usize),
    #[error("invalid variable name {0:?}")]
    BadName(String),
}

/// Substitutes `vars` into `template`.
pub fn substitute(template: &str, vars: &BTreeMap<String, String>) -> Result<String, SubstError> {
    let mut missing = BTreeSet::new();
    let out = walk(template, &mut |name, default| match (vars.get(name), default) {
        (Some(v), Some(d)) if v.is_empty() => d.to_string(),
        (Some(v), _) => v.clone(),
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            missing.insert(name.to_string());
            String::new()
        }
    })?;
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(SubstError::Missing(missing))
    }
}

fn valid_name(n: &str) -> bool {
    n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn walk(template: &str, f: &mut dyn FnMut(&str, Option<&str>) -> String) -> Result<String, SubstError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            offset += i + 2;
            rest = stripped;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            // A lone `$` (e.g. in a shell snippet) stays as it is.
            out.push('$');
            offset += i + 1;
            rest = after;
            continue;
        };
        let end = body_start.find('}').ok_or(SubstError::Unterminated(offset + i))?;
        let body = &body_start[..end];
        let (name, default) = match body.find([':', '=', '-']) {
            None => (body, None),
            Some(p) => {
                let op_len = if body[p..].starts_with(":=") || body[p..].starts_with(":-") {
                    2
                } else if body[p..].starts_with('=') || body[p..].starts_with('-') {
                    1
                } else {
                    return Err(SubstError::BadName(body.to_string()));
                };
                (&body[..p], Some(&body[p + op_len..]))
            }
        };
        if !valid_name(name) {
            return Err(SubstError::BadName(name.to_string()));
        }
        out.push_str(&f(name, default));
        let consumed = i + 2 + end + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 §3: templates come from users (`--template-dir`) and their variables from the
    /// environment: no input may panic the substitution. Mutated templates for a bounded time.
    #[test]
    fn substitution_never_panics() {
        let template = include_str!("../../../templates/dcs/cluster-template.yaml");
        let vars = vars(&[
            ("CLUSTER_NAME", "c1"),
            ("NAMESPACE", ""),
            ("KUBERNETES_VERSION", "v1.34.4"),
        ]);
        let report = capstan_e2e::fuzz::fuzz(
            "envsubst",
            &[template.as_bytes(), b"${A:=b} ${C:-} ${D=e} $$ ${F}"],
            &[b"${", b"}", b":=", b":-", b"=", b"$", b"$$", b"${CLUSTER_NAME}", b"\\"],
            |bytes| {
                let _ = substitute(&String::from_utf8_lossy(bytes), &vars);
            },
        );
        assert!(report.executions > 100, "{report:?}");
    }

    fn vars(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_values_and_escapes() {
        let t = "a: ${A}\nb: ${B:=two}\nc: ${C:-three}\nd: ${D=four}\ne: $$HOME $PATH\n";
        let out = substitute(t, &vars(&[("A", "one"), ("B", "")])).unwrap();
        assert_eq!(out, "a: one\nb: two\nc: three\nd: four\ne: $HOME $PATH\n");
        let out = substitute(t, &vars(&[("A", "1"), ("B", "2"), ("C", "3"), ("D", "4")])).unwrap();
        assert_eq!(out, "a: 1\nb: 2\nc: 3\nd: 4\ne: $HOME $PATH\n");
    }

    #[test]
    fn missing_variables_are_all_named() {
        let e = substitute("${X} ${Y} ${X} ${Z:=z}", &BTreeMap::new()).unwrap_err();
        assert_eq!(e.to_string(), "value for variables [X, Y] is not set");
        assert!(matches!(
            substitute("${X", &BTreeMap::new()),
            Err(SubstError::Unterminated(0))
        ));
        assert!(matches!(
            substitute("${1X}", &BTreeMap::new()),
            Err(SubstError::BadName(_))
        ));
    }

    #[test]
    fn the_shipped_templates_render() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/dcs");
        let vars = vars(&[
            ("CLUSTER_NAME", "c1"),
            ("CONTROL_PLANE_ENDPOINT_HOST", "127.0.0.1"),
            ("DCS_CREDENTIALS_SECRET", "creds"),
            (
                "DCS_CA_BUNDLE",
                "-----BEGIN CERTIFICATE-----\\nAAA\\n-----END CERTIFICATE-----\\n",
            ),
            ("CONTROL_PLANE_MACHINE_INDEX", "0"),
        ]);
        for f in ["cluster-template.yaml", "control-plane-machine.yaml"] {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            let out = substitute(&text, &vars).unwrap();
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
            assert!(docs.len() >= 3, "{f}");
            assert!(!out.contains("${"), "{f}");
            // jinja for cloud-init survives substitution untouched.
            assert!(out.contains("{{ ds.meta_data.provider_id }}"), "{f}");
        }
    }

    /// The MicroOS flavors: Ignition bootstrap, and the node-side variables survive clusterctl's
    /// substitution (`$${VAR}` → `${VAR}`) for envsubst on the node.
    #[test]
    fn the_shipped_microos_flavors_render() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        let vars = vars(&[
            ("CLUSTER_NAME", "c1"),
            ("CONTROL_PLANE_ENDPOINT_HOST", "127.0.0.1"),
            ("DCS_CREDENTIALS_SECRET", "creds"),
            ("DCS_CA_BUNDLE", "x"),
            ("HCS_CREDENTIALS_SECRET", "creds"),
            ("HCS_SUBNET_ID", "subnet-1"),
            ("HCS_CA_BUNDLE", "x"),
            ("CONTROL_PLANE_MACHINE_INDEX", "0"),
            ("CONTROL_PLANE_FAILURE_DOMAIN", "az1"),
        ]);
        for (cloud, node_var) in [
            ("dcs", "${CAPSTAN_PROVIDER_ID}"),
            ("hcs", "hcs://${AFTERBURN_OPENSTACK_INSTANCE_ID}"),
        ] {
            for f in ["cluster-template-microos.yaml", "control-plane-machine-microos.yaml"] {
                let text = std::fs::read_to_string(root.join(cloud).join(f)).unwrap();
                let out = substitute(&text, &vars).unwrap();
                let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
                let config = docs
                    .iter()
                    .find(|d| d["kind"] == "KubeadmConfig" || d["kind"] == "KubeadmConfigTemplate")
                    .unwrap();
                let spec = if config["kind"] == "KubeadmConfig" {
                    &config["spec"]
                } else {
                    &config["spec"]["template"]["spec"]
                };
                assert_eq!(spec["format"], "ignition", "{cloud}/{f}");
                assert!(out.contains(node_var), "{cloud}/{f}");
                assert!(
                    !out.contains("{{"),
                    "no cloud-init jinja in an Ignition flavor: {cloud}/{f}"
                );
            }
        }
    }

    #[test]
    fn the_shipped_hcs_templates_render() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/hcs");
        let vars = vars(&[
            ("CLUSTER_NAME", "c1"),
            ("HCS_CREDENTIALS_SECRET", "creds"),
            ("HCS_SUBNET_ID", "subnet-1"),
            (
                "HCS_CA_BUNDLE",
                "-----BEGIN CERTIFICATE-----\\nAAA\\n-----END CERTIFICATE-----\\n",
            ),
            ("CONTROL_PLANE_MACHINE_INDEX", "0"),
            ("CONTROL_PLANE_FAILURE_DOMAIN", "az1"),
        ]);
        let mut kinds = Vec::new();
        for f in ["cluster-template.yaml", "control-plane-machine.yaml"] {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            let out = substitute(&text, &vars).unwrap();
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
            assert!(!out.contains("${"), "{f}");
            assert!(out.contains("hcs://{{ v1.instance_id }}"), "{f}");
            kinds.extend(docs.iter().map(|d| d["kind"].as_str().unwrap().to_string()));
            if let Some(m) = docs.iter().find(|d| d["kind"] == "Machine") {
                assert_eq!(m["spec"]["failureDomain"], "az1");
            }
            if let Some(c) = docs.iter().find(|d| d["kind"] == "HCSCluster") {
                assert_eq!(c["spec"]["network"]["subnets"][0]["id"], "subnet-1");
                assert_eq!(c["spec"]["availabilityZones"].as_array().unwrap().len(), 3);
            }
        }
        for k in [
            "Cluster",
            "HCSCluster",
            "HCSMachineTemplate",
            "MachineDeployment",
            "HCSMachine",
            "Machine",
        ] {
            assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
        }
    }
}
