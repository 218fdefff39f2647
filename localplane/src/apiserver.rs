use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::pki;
use crate::process::{ChildGuard, free_port, wait_for};

/// Key material a caller brings instead of the throwaway set (e.g. a workload cluster's own CA).
#[derive(Clone)]
pub struct SuppliedPki {
    /// The cluster CA: it signs the serving certificate and verifies client certificates.
    pub ca_cert_pem: Vec<u8>,
    pub ca_key_pem: Vec<u8>,
    /// Service-account signing key (PEM private key) and its public half.
    pub sa_key_pem: Vec<u8>,
    pub sa_pub_pem: Vec<u8>,
    /// CA for the aggregation layer's client certificates (`--requestheader-client-ca-file`).
    pub front_proxy_ca_pem: Option<Vec<u8>>,
    /// Extra subject alternative names for the serving certificate (IPs or DNS names).
    pub extra_sans: Vec<String>,
}

/// The private keys never show in `Debug`: only the public parts and sizes.
impl std::fmt::Debug for SuppliedPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuppliedPki")
            .field("ca_cert_pem", &String::from_utf8_lossy(&self.ca_cert_pem))
            .field(
                "ca_key_pem",
                &format_args!("<redacted, {} bytes>", self.ca_key_pem.len()),
            )
            .field(
                "sa_key_pem",
                &format_args!("<redacted, {} bytes>", self.sa_key_pem.len()),
            )
            .field("sa_pub_pem", &String::from_utf8_lossy(&self.sa_pub_pem))
            .field("front_proxy_ca_pem", &self.front_proxy_ca_pem.as_ref().map(|p| p.len()))
            .field("extra_sans", &self.extra_sans)
            .finish()
    }
}

/// What to start.
#[derive(Clone, Debug, Default)]
pub struct PlaneOptions {
    /// Extra kube-apiserver flags, e.g. `--enable-bootstrap-token-auth`.
    pub extra_args: Vec<String>,
    /// Port on the bind address for the API server; `None` picks a free one.
    pub port: Option<u16>,
    /// Loopback address the API server binds and advertises (and its URL names); `None` is
    /// 127.0.0.1. Simulated VMs behind a cloud load balancer serve on their own address.
    pub bind_address: Option<std::net::Ipv4Addr>,
    /// Keys to use; `None` generates a throwaway CA and service-account key.
    pub pki: Option<SuppliedPki>,
    /// Where to keep data and logs; `None` makes a temporary directory (memory-backed when
    /// `/dev/shm` exists) that is removed on drop.
    pub dir: Option<PathBuf>,
    /// Kubernetes version of the API server (`v1.33.4`: any built 1.33); `None` is the default.
    pub kubernetes_version: Option<String>,
}

enum PlaneDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl PlaneDir {
    fn path(&self) -> &Path {
        match self {
            PlaneDir::Temp(t) => t.path(),
            PlaneDir::Kept(p) => p,
        }
    }
}

/// A running etcd + kube-apiserver pair. Dropping it kills both and removes their data.
pub struct LocalPlane {
    // Field order is drop order: the API server goes before etcd, the directory last.
    apiserver: ChildGuard,
    _etcd: ChildGuard,
    url: String,
    ca_pem: Vec<u8>,
    ca_key_pem: Vec<u8>,
    kubeconfig_path: PathBuf,
    /// Bearer token of `admin` (`system:masters`).
    admin_token: String,
    /// Bearer token of [`RESTRICTED_USER`], which has no RBAC grants until a test gives it some.
    restricted_token: String,
    dir: PlaneDir,
}

/// Token of the `admin` user (group `system:masters`).
/// Per-plane random tokens: a plane may serve a (simulated) workload cluster that other local
/// users can reach, so nothing here is a well-known credential.
fn random_token() -> anyhow::Result<String> {
    let mut b = [0u8; 24];
    openssl::rand::rand_bytes(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
pub const RESTRICTED_USER: &str = "capstan-test-user";

impl LocalPlane {
    /// Starts etcd and kube-apiserver with throwaway keys.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(PlaneOptions::default()).await
    }

    pub async fn start_with(opts: PlaneOptions) -> anyhow::Result<Self> {
        let etcd_bin = crate::binaries::etcd()?;
        let apiserver_bin = crate::binaries::kube_apiserver(opts.kubernetes_version.as_deref())?;
        let dir = match &opts.dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                PlaneDir::Kept(d.clone())
            }
            None => {
                // Memory-backed when available: etcd fsyncs every write and tests write a lot.
                let base = if Path::new("/dev/shm").is_dir() {
                    Path::new("/dev/shm")
                } else {
                    Path::new("/tmp")
                };
                PlaneDir::Temp(tempfile::Builder::new().prefix("capstan-plane-").tempdir_in(base)?)
            }
        };
        let pki = match &opts.pki {
            None => pki::generate()?,
            Some(s) => pki::from_supplied(s)?,
        };
        let write = |name: &str, data: &[u8]| -> anyhow::Result<PathBuf> {
            let p = dir.path().join(name);
            std::fs::write(&p, data)?;
            Ok(p)
        };
        let ca = write("ca.crt", &pki.ca_pem)?;
        let serving_crt = write("apiserver.crt", &pki.serving_cert_pem)?;
        let serving_key = write("apiserver.key", &pki.serving_key_pem)?;
        let sa_key = write("sa.key", &pki.sa_key_pem)?;
        let sa_pub = write("sa.pub", &pki.sa_pub_pem)?;
        let admin_token = random_token()?;
        let restricted_token = random_token()?;
        let tokens = write(
            "tokens.csv",
            format!(
                "{admin_token},admin,admin,system:masters\n{restricted_token},{RESTRICTED_USER},{RESTRICTED_USER}\n"
            )
            .as_bytes(),
        )?;

        let (etcd, etcd_url) = start_etcd(&etcd_bin, dir.path())?;

        let port = opts.port.unwrap_or_else(free_port);
        let bind = opts.bind_address.unwrap_or(std::net::Ipv4Addr::LOCALHOST).to_string();
        let mut cmd = Command::new(&apiserver_bin);
        cmd.args([
            "--etcd-servers",
            &etcd_url,
            "--bind-address",
            &bind,
            "--advertise-address",
            &bind,
            "--secure-port",
            &port.to_string(),
            "--tls-cert-file",
            path_str(&serving_crt),
            "--tls-private-key-file",
            path_str(&serving_key),
            "--client-ca-file",
            path_str(&ca),
            "--service-account-key-file",
            path_str(&sa_pub),
            "--service-account-signing-key-file",
            path_str(&sa_key),
            "--service-account-issuer",
            "https://kubernetes.default.svc",
            "--token-auth-file",
            path_str(&tokens),
            "--service-cluster-ip-range",
            "10.96.0.0/12",
            "--cert-dir",
            path_str(dir.path()),
            // No kubelets and no controller-manager here: keep the server from waiting on them.
            "--endpoint-reconciler-type",
            "none",
            "--profiling=false",
            "--v=1",
        ]);
        if let Some(front_proxy) = opts.pki.as_ref().and_then(|p| p.front_proxy_ca_pem.as_deref()) {
            let f = write("front-proxy-ca.crt", front_proxy)?;
            cmd.arg("--requestheader-client-ca-file").arg(&f);
            cmd.args([
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-username-headers=X-Remote-User",
            ]);
        }
        // String-slice flags append when repeated, so the default goes only when not overridden.
        if !opts.extra_args.iter().any(|a| a.starts_with("--authorization-mode")) {
            cmd.args(["--authorization-mode", "RBAC"]);
        }
        cmd.args(&opts.extra_args);
        let apiserver = ChildGuard::spawn("kube-apiserver", cmd, &dir.path().join("kube-apiserver.log"))?;

        let url = format!("https://{bind}:{port}");
        let kubeconfig_path = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig_path, kubeconfig_yaml(&url, &pki.ca_pem, &admin_token, None))?;
        let env = LocalPlane {
            apiserver,
            _etcd: etcd,
            url,
            ca_pem: pki.ca_pem.clone(),
            ca_key_pem: pki.ca_key_pem.clone(),
            kubeconfig_path,
            admin_token,
            restricted_token,
            dir,
        };

        let client = env.client().await?;
        let ready = wait_for(Duration::from_secs(90), || {
            let client = client.clone();
            async move {
                let req = http::Request::get("/readyz").body(Vec::new()).unwrap();
                matches!(client.request_text(req).await.as_deref(), Ok("ok"))
            }
        })
        .await;
        if !ready {
            anyhow::bail!("kube-apiserver did not become ready:\n{}", env.apiserver.log_tail(30));
        }
        // `/readyz` can answer before the bootstrap controller has created the `default`
        // namespace that every test writes into.
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
        let has_default = wait_for(Duration::from_secs(30), || {
            let namespaces = namespaces.clone();
            async move { matches!(namespaces.get_opt("default").await, Ok(Some(_))) }
        })
        .await;
        if !has_default {
            anyhow::bail!(
                "kube-apiserver never created the default namespace:\n{}",
                env.apiserver.log_tail(30)
            );
        }
        Ok(env)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// PEM of the CA that signed the server's certificate (and that the server trusts for client
    /// certificates).
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// PEM (PKCS#8) of that CA's key, for tests that need client certificates.
    pub fn ca_key_pem(&self) -> &[u8] {
        &self.ca_key_pem
    }

    /// An admin kubeconfig file, for processes started by the test (e.g. the manager).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// A scratch directory that lives as long as the environment.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The API server's process id (for process-tree checks).
    pub fn apiserver_pid(&self) -> u32 {
        self.apiserver.id()
    }

    /// Whether the API server process is still running.
    pub fn apiserver_running(&mut self) -> bool {
        self.apiserver.is_running()
    }

    /// A client acting as `admin` (`system:masters`).
    pub async fn client(&self) -> anyhow::Result<Client> {
        client_from(&kubeconfig_yaml(&self.url, &self.ca_pem, &self.admin_token, None)).await
    }

    /// A client acting as `capstan-test-user`, which can do nothing until RBAC allows it.
    pub async fn restricted_client(&self) -> anyhow::Result<Client> {
        client_from(&kubeconfig_yaml(&self.url, &self.ca_pem, &self.restricted_token, None)).await
    }

    /// A client impersonating `user` in `groups`, e.g. a service account, to test RBAC manifests.
    pub async fn impersonating(&self, user: &str, groups: &[&str]) -> anyhow::Result<Client> {
        client_from(&kubeconfig_yaml(
            &self.url,
            &self.ca_pem,
            &self.admin_token,
            Some((user, groups)),
        ))
        .await
    }

    /// Writes a kubeconfig impersonating `user` in `groups` and returns its path.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> anyhow::Result<PathBuf> {
        let path = self.dir().join(format!("kubeconfig-{}", user.replace([':', '/'], "-")));
        std::fs::write(
            &path,
            kubeconfig_yaml(&self.url, &self.ca_pem, &self.admin_token, Some((user, groups))),
        )?;
        Ok(path)
    }

    /// Creates the CRDs and waits until the server serves them.
    pub async fn install_crds(&self, crds: &[CustomResourceDefinition]) -> anyhow::Result<()> {
        install_crds(&self.client().await?, crds).await.map(|_| ())
    }

    /// The API server's log so far, for assertions and failure messages.
    pub fn apiserver_log_tail(&self, n: usize) -> String {
        self.apiserver.log_tail(n)
    }

    /// Stops the API server (etcd keeps running), to test how clients cope.
    pub fn kill_apiserver(&mut self) {
        self.apiserver.kill();
    }
}

/// Creates the CRDs that do not exist yet and waits until every one is served; returns the
/// names it created (so a caller can remove exactly those later).
pub async fn install_crds(client: &Client, crds: &[CustomResourceDefinition]) -> anyhow::Result<Vec<String>> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut created = Vec::new();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        if api.get_opt(&name).await?.is_some() {
            continue;
        }
        api.create(&PostParams::default(), crd)
            .await
            .map_err(|e| anyhow::anyhow!("creating CRD {name:?}: {e}"))?;
        created.push(name);
    }
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let api = api.clone();
        let established = wait_for(Duration::from_secs(30), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                api.get(&name)
                    .await
                    .ok()
                    .and_then(|c| c.status)
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
            }
        })
        .await;
        if !established {
            anyhow::bail!("CRD {name} not established");
        }
    }
    // Discovery lags "Established" by a moment; wait until every kind is listable.
    for crd in crds {
        let version = crd
            .spec
            .versions
            .iter()
            .find(|v| v.storage)
            .map(|v| v.name.clone())
            .unwrap_or_default();
        let path = format!("/apis/{}/{}/{}", crd.spec.group, version, crd.spec.names.plural);
        let ok = wait_for(Duration::from_secs(30), || {
            let client = client.clone();
            let path = path.clone();
            async move {
                let req = http::Request::get(path).body(Vec::new()).unwrap();
                client.request_text(req).await.is_ok()
            }
        })
        .await;
        if !ok {
            anyhow::bail!("{path} is not served");
        }
    }
    Ok(created)
}

fn start_etcd(bin: &Path, dir: &Path) -> anyhow::Result<(ChildGuard, String)> {
    // A port picked free can be taken before etcd binds it; try a few times.
    let mut last_err = String::new();
    for attempt in 0..5 {
        let client_port = free_port();
        let peer_port = free_port();
        let url = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let data = dir.join(format!("etcd-{attempt}"));
        let mut cmd = Command::new(bin);
        cmd.args([
            "--name",
            "default",
            "--data-dir",
            path_str(&data),
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("default={peer}"),
            "--log-level",
            "warn",
        ]);
        let mut etcd = ChildGuard::spawn("etcd", cmd, &dir.join("etcd.log"))?;
        let healthy = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::net::TcpStream::connect(("127.0.0.1", client_port)).is_ok()
        });
        if healthy && etcd.is_running() {
            return Ok((etcd, url));
        }
        last_err = etcd.log_tail(20);
    }
    anyhow::bail!("etcd did not start:\n{last_err}")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn kubeconfig_yaml(url: &str, ca_pem: &[u8], token: &str, impersonate: Option<(&str, &[&str])>) -> String {
    use openssl::base64::encode_block;
    let mut user = format!("    token: {token}\n");
    if let Some((who, groups)) = impersonate {
        user.push_str(&format!("    as: \"{who}\"\n"));
        if !groups.is_empty() {
            user.push_str("    as-groups:\n");
            for g in groups {
                user.push_str(&format!("    - \"{g}\"\n"));
            }
        }
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    certificate-authority-data: {}\nusers:\n- name: test\n  user:\n{user}contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\ncurrent-context: test\n",
        encode_block(ca_pem).replace('\n', "")
    )
}

async fn client_from(yaml: &str) -> anyhow::Result<Client> {
    // kube brings ring and reqwest brings aws-lc-rs; rustls needs to be told which to use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::from_yaml(yaml)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 §1: supplied private keys never show in `Debug`.
    #[test]
    fn supplied_pki_debug_hides_private_keys() {
        let pki = SuppliedPki {
            ca_cert_pem: b"CERT".to_vec(),
            ca_key_pem: b"CA-PRIVATE-KEY".to_vec(),
            sa_key_pem: b"SA-PRIVATE-KEY".to_vec(),
            sa_pub_pem: b"SA-PUBLIC".to_vec(),
            front_proxy_ca_pem: None,
            extra_sans: vec![],
        };
        let shown = format!("{pki:?}");
        assert!(!shown.contains("PRIVATE-KEY"), "{shown}");
        assert!(shown.contains("CERT"), "{shown}");
    }
}
