//! Bootstrap data without an API server (`capstan render`): from a KubeadmConfig, its Cluster and
//! Machine, and optionally a kubeadm-layout PKI directory. What the controller would take from
//! the management or workload cluster is either derived or generated here, and each such
//! substitution is reported as a note so nobody mistakes a preview for the real thing.

use std::path::Path;

use capstan_api::core::{Cluster, Machine};

use crate::api::{ContentFormat, KubeadmConfig};
use crate::controller::resolve::render_content_template;
use crate::document::{self, DocumentInput};
use crate::pki::{self, Certificates, KeyPair, Purpose, ca_validity_days};
use crate::render::DocumentKind;

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

pub struct Rendered {
    pub kind: DocumentKind,
    pub document: String,
    /// What was generated or assumed instead of read from a cluster.
    pub notes: Vec<String>,
}

/// The document kind the controller would produce for this Machine right now.
pub fn detect_kind(config: &KubeadmConfig, cluster: &Cluster, machine: &Machine) -> DocumentKind {
    let initialized = capstan_api::conditions::is_true(
        &cluster.status.as_ref().and_then(|s| s.conditions.clone()),
        "ControlPlaneInitialized",
    );
    match (machine.is_control_plane(), initialized) {
        (true, false) if config.spec.join_configuration.control_plane.is_none() => DocumentKind::InitControlPlane,
        (true, _) => DocumentKind::JoinControlPlane,
        (false, _) => DocumentKind::JoinWorker,
    }
}

fn read_pair(dir: &Path, cert: &str, key: &str) -> Result<Option<KeyPair>, OfflineError> {
    let read = |name: &str| {
        let p = dir.join(name);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(OfflineError::Io {
                path: p.display().to_string(),
                source,
            }),
        }
    };
    Ok(match (read(cert)?, read(key)?) {
        (Some(cert), key) => Some(KeyPair {
            cert,
            key: key.unwrap_or_default(),
        }),
        _ => None,
    })
}

pub fn render(
    config: &KubeadmConfig,
    cluster: &Cluster,
    machine: &Machine,
    pki_dir: Option<&Path>,
    kind: Option<DocumentKind>,
) -> Result<Rendered, OfflineError> {
    let kind = kind.unwrap_or_else(|| detect_kind(config, cluster, machine));
    let mut notes = Vec::new();
    let mut spec = config.spec.clone();
    let version = machine
        .spec
        .version
        .clone()
        .ok_or_else(|| OfflineError::Input("the Machine has no spec.version".into()))?;

    let cc = &spec.cluster_configuration;
    let mut certs = Certificates::for_initial_control_plane(cc);
    if let Some(dir) = pki_dir {
        for (purpose, cert, key) in [
            (Purpose::ClusterCa, "ca.crt", "ca.key"),
            (Purpose::EtcdCa, "etcd/ca.crt", "etcd/ca.key"),
            (Purpose::FrontProxyCa, "front-proxy-ca.crt", "front-proxy-ca.key"),
            (Purpose::ServiceAccount, "sa.pub", "sa.key"),
        ] {
            if let (Some(c), Some(kp)) = (certs.get_mut(purpose), read_pair(dir, cert, key)?) {
                c.key_pair = Some(kp);
            }
        }
    }
    certs.generate_missing(cc.encryption_algorithm.unwrap_or_default(), ca_validity_days(cc))?;
    for c in certs.0.iter().filter(|c| c.generated) {
        notes.push(format!(
            "generated a new {} for this preview (not saved)",
            c.purpose
                .secret_name(&cluster.metadata.name.clone().unwrap_or_default())
        ));
    }
    let ca_cert = certs
        .get(Purpose::ClusterCa)
        .and_then(|c| c.key_pair.as_ref())
        .map(|k| k.cert.clone())
        .unwrap_or_default();
    if kind == DocumentKind::JoinWorker {
        let mut worker = Certificates::for_worker(&spec.join_configuration.ca_cert_path);
        worker.0[0].key_pair = Some(KeyPair {
            cert: ca_cert.clone(),
            key: Vec::new(),
        });
        certs = worker;
    }

    if kind != DocumentKind::InitControlPlane && spec.join_configuration.discovery.file.is_none() {
        let bt = &mut spec.join_configuration.discovery.bootstrap_token;
        crate::discovery::default_bootstrap_token(bt, cluster, &ca_cert)
            .map_err(|e| OfflineError::Input(e.to_string()))?;
        if bt.token.is_empty() {
            bt.token = crate::controller::token::generate_token().map_err(|e| OfflineError::Input(e.to_string()))?;
            notes.push("generated a bootstrap token that exists in no cluster (not registered)".into());
        }
    }
    if kind == DocumentKind::JoinControlPlane && spec.join_configuration.control_plane.is_none() {
        spec.join_configuration.control_plane = Some(Default::default());
    }

    let mut files = Vec::new();
    for f in spec.files.iter().flatten() {
        if let Some(src) = &f.content_from {
            return Err(OfflineError::Input(format!(
                "file {} takes its content from secret {}/{}, which needs the API server: inline it to preview",
                f.path, src.secret.name, src.secret.key
            )));
        }
        let mut f = f.clone();
        if f.content_format == Some(ContentFormat::Template) {
            f.content =
                render_content_template(&f.path, &f.content, None).map_err(|e| OfflineError::Input(e.to_string()))?;
        }
        files.push(f);
    }
    let mut users = Vec::new();
    for u in spec.users.iter().flatten() {
        if let Some(src) = &u.passwd_from {
            return Err(OfflineError::Input(format!(
                "user {} takes its password from secret {}/{}, which needs the API server",
                u.name, src.secret.name, src.secret.key
            )));
        }
        users.push(u.clone());
    }
    let document = document::render(DocumentInput {
        kind,
        spec: &spec,
        cluster,
        kubernetes_version: &version,
        certificates: &certs,
        files,
        users,
        additional_files: Vec::new(),
        ignition_version: config
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::render::ignition::VERSION_ANNOTATION).cloned()),
    })?;
    Ok(Rendered { kind, document, notes })
}
