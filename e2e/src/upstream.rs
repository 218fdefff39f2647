//! Upstream Cluster API as a peer in the tests: core, KubeadmControlPlane and CABPK components for
//! clusterctl's local repository, assembled from the CAPI module's own `config/` trees (the CRDs
//! and webhook manifests its release assets are made of), and their managers run as processes.
//!
//! A bare kube-apiserver runs no pods and no cert-manager, so two things differ from a release
//! asset, as in CAPI's own envtest: every webhook and conversion endpoint is a `url:` on
//! 127.0.0.1 (the manager process the test starts) with the test's CA as `caBundle`, and the
//! Deployments are left out (nothing would run them).
//!
//! The binaries and the module come from `hack/testenv.sh` (`CAPSTAN_CAPI_*`, `CAPSTAN_KCP_MANAGER`,
//! `CAPSTAN_CLUSTERCTL`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use capstan_localplane::{ChildGuard, free_port};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

/// One upstream provider the tests install.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    Core,
    KubeadmControlPlane,
    /// CABPK, the bootstrap provider Capstan kubeadm is a drop-in for.
    KubeadmBootstrap,
}

impl Upstream {
    /// clusterctl's provider name and type, and the repository folder.
    fn clusterctl(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Upstream::Core => ("cluster-api", "CoreProvider", "cluster-api"),
            Upstream::KubeadmControlPlane => ("kubeadm", "ControlPlaneProvider", "control-plane-kubeadm"),
            Upstream::KubeadmBootstrap => ("kubeadm", "BootstrapProvider", "bootstrap-kubeadm"),
        }
    }

    fn components_file(self) -> &'static str {
        match self {
            Upstream::Core => "core-components.yaml",
            Upstream::KubeadmControlPlane => "control-plane-components.yaml",
            Upstream::KubeadmBootstrap => "bootstrap-components.yaml",
        }
    }

    /// Its `config/` tree in the module, its namespace and the prefix kustomize gives its objects.
    fn config(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Upstream::Core => ("core/config", "capi-system", "capi-"),
            Upstream::KubeadmControlPlane => (
                "controlplane/kubeadm/config",
                "capi-kubeadm-control-plane-system",
                "capi-kubeadm-control-plane-",
            ),
            Upstream::KubeadmBootstrap => (
                "bootstrap/kubeadm/config",
                "capi-kubeadm-bootstrap-system",
                "capi-kubeadm-bootstrap-",
            ),
        }
    }
}

/// The upstream binaries and module of the test bed.
pub struct UpstreamCapi {
    pub version: String,
    module: PathBuf,
    core_manager: PathBuf,
    kcp_manager: PathBuf,
    cabpk_manager: PathBuf,
    pub clusterctl: PathBuf,
}

fn env_path(var: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .with_context(|| format!("{var} is not set: run the tests through hack/test.sh (it sources hack/testenv.sh)"))
}

/// A webhook serving certificate for 127.0.0.1 and the CA the API server trusts it by.
pub struct WebhookPki {
    pub ca_pem: String,
    dir: tempfile::TempDir,
}

impl WebhookPki {
    pub fn generate() -> anyhow::Result<Self> {
        let pki = capstan_simkit::tls::generate_pem("capi-webhooks", [127, 0, 0, 1].into())?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("tls.crt"), &pki.cert_pem)?;
        std::fs::write(dir.path().join("tls.key"), &pki.key_pem)?;
        Ok(WebhookPki {
            ca_pem: pki.ca_pem,
            dir,
        })
    }

    /// `--webhook-cert-dir` of every upstream manager.
    pub fn cert_dir(&self) -> &Path {
        self.dir.path()
    }

    fn ca_bundle(&self) -> String {
        openssl::base64::encode_block(self.ca_pem.as_bytes())
    }
}

impl UpstreamCapi {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(UpstreamCapi {
            version: std::env::var("CAPSTAN_CAPI_VERSION").context("CAPSTAN_CAPI_VERSION is not set")?,
            module: env_path("CAPSTAN_CAPI_MODULE")?,
            core_manager: env_path("CAPSTAN_CAPI_CORE_MANAGER")?,
            kcp_manager: env_path("CAPSTAN_KCP_MANAGER")?,
            cabpk_manager: env_path("CAPSTAN_CABPK_MANAGER")?,
            clusterctl: env_path("CAPSTAN_CLUSTERCTL")?,
        })
    }

    /// Writes `which`'s components and metadata into the clusterctl repository at `root`; its
    /// webhooks point at `https://127.0.0.1:<port>`. Returns its clusterctl.yaml `providers:` entry.
    pub fn write_provider(&self, root: &Path, which: Upstream, port: u16, pki: &WebhookPki) -> anyhow::Result<Value> {
        let (name, kind, folder) = which.clusterctl();
        let dir = root.join(folder).join(&self.version);
        std::fs::create_dir_all(&dir)?;
        let components = dir.join(which.components_file());
        std::fs::write(
            &components,
            capstan_api::crd::to_yaml(&self.components(which, port, pki)?)?,
        )?;
        std::fs::copy(self.module.join("metadata.yaml"), dir.join("metadata.yaml"))
            .context("copying the module's metadata.yaml")?;
        Ok(json!({"name": name, "type": kind, "url": format!("file://{}", components.display())}))
    }

    /// `which`'s CRDs alone, as its components carry them (labels and conversion included), for
    /// a test that runs the manager without admission webhooks.
    pub fn crds(&self, which: Upstream, port: u16, pki: &WebhookPki) -> anyhow::Result<Vec<CustomResourceDefinition>> {
        self.components(which, port, pki)?
            .into_iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
            .map(|d| serde_json::from_value(d).context("an upstream CRD"))
            .collect()
    }

    fn components(&self, which: Upstream, port: u16, pki: &WebhookPki) -> anyhow::Result<Vec<Value>> {
        let (config, namespace, prefix) = which.config();
        let config = self.module.join(config);
        let base = format!("https://127.0.0.1:{port}");
        let mut docs = vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})];
        let mut crd_files: Vec<PathBuf> = std::fs::read_dir(config.join("crd/bases"))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        crd_files.sort();
        // The labels kustomize gives every CRD (the contract labels clusterctl and core read).
        let kustomization = read_yaml(&config.join("crd/kustomization.yaml"))?;
        let labels: serde_json::Map<String, Value> = kustomization
            .iter()
            .flat_map(|k| k["labels"].as_array().cloned().unwrap_or_default())
            .flat_map(|l| l["pairs"].as_object().cloned().unwrap_or_default())
            .collect();
        for file in crd_files {
            let mut crd: Value = read_yaml(&file)?.into_iter().next().context("empty CRD file")?;
            if !labels.is_empty() {
                let meta = crd["metadata"].as_object_mut().context("CRD without metadata")?;
                let own = meta.entry("labels").or_insert_with(|| json!({}));
                for (k, v) in &labels {
                    own[k] = v.clone();
                }
            }
            // Conversion between v1beta1 and v1beta2 by the manager, as the release's CRD patches do.
            if crd["spec"]["versions"].as_array().is_some_and(|v| v.len() > 1) {
                crd["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": {"url": format!("{base}/convert"), "caBundle": pki.ca_bundle()},
                }});
            }
            docs.push(crd);
        }
        for mut webhooks in read_yaml(&config.join("webhook/manifests.yaml"))? {
            let name = webhooks["metadata"]["name"].as_str().unwrap_or_default().to_string();
            webhooks["metadata"]["name"] = json!(format!("{prefix}{name}"));
            for hook in webhooks["webhooks"].as_array_mut().into_iter().flatten() {
                let path = hook["clientConfig"]["service"]["path"]
                    .as_str()
                    .unwrap_or("/")
                    .to_string();
                hook["clientConfig"] = json!({"url": format!("{base}{path}"), "caBundle": pki.ca_bundle()});
            }
            docs.push(webhooks);
        }
        Ok(docs)
    }

    /// Starts `which`'s manager against `kubeconfig`, serving its webhooks on `port`, with
    /// `extra_args` (feature gates) after the test bed's own flags.
    pub fn start_manager(
        &self,
        which: Upstream,
        kubeconfig: &Path,
        port: u16,
        pki: &WebhookPki,
        log: &Path,
        extra_args: &[&str],
    ) -> anyhow::Result<ChildGuard> {
        let binary = match which {
            Upstream::Core => &self.core_manager,
            Upstream::KubeadmControlPlane => &self.kcp_manager,
            Upstream::KubeadmBootstrap => &self.cabpk_manager,
        };
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--webhook-port={port}"))
            .arg(format!("--webhook-cert-dir={}", pki.cert_dir().display()))
            .arg(format!("--health-addr=127.0.0.1:{}", free_port()))
            .arg("--diagnostics-address=0")
            // Nothing to migrate in a fresh cluster, and the migrator wants cluster-wide CRD writes.
            .arg("--skip-crd-migration-phases=StorageVersionMigration,CleanupManagedFields")
            .args(extra_args)
            .env("POD_NAMESPACE", which.config().1);
        ChildGuard::spawn(which.clusterctl().2, cmd, log)
    }
}

/// Waits until a manager's webhook server accepts connections (the API server calls it on
/// every write of its kinds, and fails the write while nobody listens).
pub async fn wait_for_webhooks(port: u16) -> anyhow::Result<()> {
    let up = capstan_localplane::wait_for(std::time::Duration::from_secs(60), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
    })
    .await;
    anyhow::ensure!(up, "nothing serves webhooks on 127.0.0.1:{port} after 60s");
    Ok(())
}

fn read_yaml(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// cert-manager's `Issuer` and `Certificate` kinds, schema-less: `clusterctl init` probes for a
/// working cert-manager by creating one of each and installs it from the internet otherwise.
/// Nothing issues certificates here; the components carry their CA bundles themselves.
pub fn cert_manager_crds() -> Vec<CustomResourceDefinition> {
    ["Issuer", "Certificate"]
        .into_iter()
        .map(|kind| {
            let plural = format!("{}s", kind.to_lowercase());
            serde_json::from_value(json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("{plural}.cert-manager.io")},
                "spec": {
                    "group": "cert-manager.io", "scope": "Namespaced",
                    "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
                },
            }))
            .expect("a valid CRD")
        })
        .collect()
}
