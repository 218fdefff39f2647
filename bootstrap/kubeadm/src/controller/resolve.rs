//! `spec.files[].contentFrom`, `contentFormat: Template` and `spec.users[].passwdFrom`: filled in
//! from Secrets in the config's namespace before rendering. The values are secrets themselves and
//! never logged; error messages name the Secret and key only.

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;

use super::Error;
use crate::api::{ContentFormat, File, KubeadmConfigSpec, SecretFileSource, User};

/// Problems the user must fix in the spec or the referenced Secrets.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("secret {name} does not exist")]
    SecretMissing { name: String },
    #[error("secret {name} has no key {key}")]
    KeyMissing { name: String, key: String },
    #[error("file {path}: content template may only use {{{{ .controlPlane.version }}}}: {detail}")]
    Template { path: String, detail: String },
}

async fn secret_value(secrets: &Api<Secret>, src: &SecretFileSource) -> Result<Result<String, InputError>, Error> {
    let Some(secret) = secrets.get_opt(&src.name).await? else {
        return Ok(Err(InputError::SecretMissing { name: src.name.clone() }));
    };
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&src.key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .or_else(|| secret.string_data.as_ref().and_then(|d| d.get(&src.key)).cloned());
    Ok(value.ok_or_else(|| InputError::KeyMissing {
        name: src.name.clone(),
        key: src.key.clone(),
    }))
}

/// Renders a `contentFormat: Template` file. Upstream runs Go text/template with the single
/// variable `.controlPlane.version`; that variable is substituted here, and any other action is
/// refused rather than silently emitted verbatim.
pub fn render_content_template(
    path: &str,
    content: &str,
    control_plane_version: Option<&str>,
) -> Result<String, InputError> {
    let mut out = String::new();
    let mut rest = content;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| InputError::Template {
            path: path.into(),
            detail: "unclosed action".into(),
        })?;
        let action = after[..end].trim_matches(|c: char| c.is_whitespace() || c == '-');
        if action != ".controlPlane.version" {
            return Err(InputError::Template {
                path: path.into(),
                detail: format!("unsupported action {{{{ {action} }}}}"),
            });
        }
        // Without a control plane version Go prints `<no value>` for the missing map key.
        out.push_str(control_plane_version.unwrap_or("<no value>"));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Files with content filled in.
pub async fn files(
    client: &Client,
    ns: &str,
    spec: &KubeadmConfigSpec,
    control_plane_version: Option<&str>,
) -> Result<Result<Vec<File>, InputError>, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    for f in spec.files.iter().flatten() {
        let mut f = f.clone();
        if let Some(src) = f.content_from.take() {
            match secret_value(&secrets, &src.secret).await? {
                Ok(v) => f.content = v,
                Err(e) => return Ok(Err(e)),
            }
        }
        if f.content_format == Some(ContentFormat::Template) {
            match render_content_template(&f.path, &f.content, control_plane_version) {
                Ok(v) => f.content = v,
                Err(e) => return Ok(Err(e)),
            }
        }
        out.push(f);
    }
    Ok(Ok(out))
}

/// Users with `passwdFrom` resolved into `passwd`.
pub async fn users(
    client: &Client,
    ns: &str,
    spec: &KubeadmConfigSpec,
) -> Result<Result<Vec<User>, InputError>, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    for u in spec.users.iter().flatten() {
        let mut u = u.clone();
        if let Some(src) = u.passwd_from.take() {
            match secret_value(&secrets, &src.secret).await? {
                Ok(v) => u.passwd = v,
                Err(e) => return Ok(Err(e)),
            }
        }
        out.push(u);
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_templates() {
        assert_eq!(
            render_content_template(
                "/a",
                "v={{ .controlPlane.version }};{{.controlPlane.version}}",
                Some("v1.31.0")
            )
            .unwrap(),
            "v=v1.31.0;v1.31.0"
        );
        assert_eq!(
            render_content_template("/a", "{{ .controlPlane.version }}", None).unwrap(),
            "<no value>"
        );
        assert_eq!(render_content_template("/a", "plain", None).unwrap(), "plain");
        let err = render_content_template("/a", "{{ range . }}", None).unwrap_err();
        assert!(err.to_string().contains("unsupported action"), "{err}");
        assert!(render_content_template("/a", "{{ .x", None).is_err());
    }
}
