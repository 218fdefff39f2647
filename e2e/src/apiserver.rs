use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::crds::{capi_crds_dir, load_crds_from_dir};
use crate::pki;
use crate::process::{ChildGuard, free_port, wait_for};

/// What to start.
#[derive(Clone, Debug, Default)]
pub struct TestEnvOptions {
    /// Install the upstream Cluster API CRDs (`shared/capi/crds-k8s1.20`).
    pub capi_crds: bool,
    /// Extra kube-apiserver flags, e.g. `--enable-bootstrap-token-auth`.
    pub extra_args: Vec<String>,
}

/// A running etcd + kube-apiserver pair. Dropping it kills both and removes their data.
pub struct TestEnv {
    // Field order is drop order: the API server goes before etcd, the directory last.
    apiserver: ChildGuard,
    _etcd: ChildGuard,
    url: String,
    ca_pem: Vec<u8>,
    ca_key_pem: Vec<u8>,
    kubeconfig_path: PathBuf,
    dir: tempfile::TempDir,
}

/// Token of the `admin` user (group `system:masters`).
const ADMIN_TOKEN: &str = "capstan-admin-token";
/// Token of `capstan-test-user`, which has no RBAC grants until a test gives it some.
const RESTRICTED_TOKEN: &str = "capstan-restricted-token";
pub const RESTRICTED_USER: &str = "capstan-test-user";

fn binary(env: &str, default: impl FnOnce() -> PathBuf) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(default);
    if path.is_file() {
        Ok(path)
    } else {
        anyhow::bail!(
            "{} not found (set {env} or run `eval \"$(hack/testenv.sh)\"`)",
            path.display()
        )
    }
}

fn cache_dir() -> PathBuf {
    std::env::var_os("CAPSTAN_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/capstan")
    })
}

impl TestEnv {
    /// Starts etcd and kube-apiserver with the upstream CAPI CRDs installed.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(TestEnvOptions {
            capi_crds: true,
            ..Default::default()
        })
        .await
    }

    /// Starts etcd and kube-apiserver with nothing installed.
    pub async fn start_bare() -> anyhow::Result<Self> {
        Self::start_with(TestEnvOptions::default()).await
    }

    pub async fn start_with(opts: TestEnvOptions) -> anyhow::Result<Self> {
        let etcd_bin = binary("CAPSTAN_ETCD", || PathBuf::from("/usr/bin/etcd"))?;
        let apiserver_bin = binary("CAPSTAN_KUBE_APISERVER", || cache_dir().join("kube-apiserver-1.20.2"))?;
        // Memory-backed when available: etcd fsyncs every write and tests write a lot.
        let base = if Path::new("/dev/shm").is_dir() {
            Path::new("/dev/shm")
        } else {
            Path::new("/tmp")
        };
        let dir = tempfile::Builder::new().prefix("capstan-testenv-").tempdir_in(base)?;
        let pki = pki::generate()?;
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
        let tokens = write(
            "tokens.csv",
            format!(
                "{ADMIN_TOKEN},admin,admin,system:masters\n{RESTRICTED_TOKEN},{RESTRICTED_USER},{RESTRICTED_USER}\n"
            )
            .as_bytes(),
        )?;

        let (etcd, etcd_url) = start_etcd(&etcd_bin, dir.path())?;

        let port = free_port();
        let mut cmd = Command::new(&apiserver_bin);
        cmd.args([
            "--etcd-servers",
            &etcd_url,
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
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
            "--authorization-mode",
            "RBAC",
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
        cmd.args(&opts.extra_args);
        let apiserver = ChildGuard::spawn("kube-apiserver", cmd, &dir.path().join("kube-apiserver.log"))?;

        let url = format!("https://127.0.0.1:{port}");
        let kubeconfig_path = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig_path, kubeconfig_yaml(&url, &pki.ca_pem, ADMIN_TOKEN, None))?;
        let env = TestEnv {
            apiserver,
            _etcd: etcd,
            url,
            ca_pem: pki.ca_pem.clone(),
            ca_key_pem: pki.ca_key_pem.clone(),
            kubeconfig_path,
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
        if opts.capi_crds {
            env.install_crds(&load_crds_from_dir(&capi_crds_dir())?).await?;
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

    /// A client acting as `admin` (`system:masters`).
    pub async fn client(&self) -> anyhow::Result<Client> {
        client_from(&kubeconfig_yaml(&self.url, &self.ca_pem, ADMIN_TOKEN, None)).await
    }

    /// A client acting as `capstan-test-user`, which can do nothing until RBAC allows it.
    pub async fn restricted_client(&self) -> anyhow::Result<Client> {
        client_from(&kubeconfig_yaml(&self.url, &self.ca_pem, RESTRICTED_TOKEN, None)).await
    }

    /// A client impersonating `user` in `groups`, e.g. a service account, to test RBAC manifests.
    pub async fn impersonating(&self, user: &str, groups: &[&str]) -> anyhow::Result<Client> {
        client_from(&kubeconfig_yaml(
            &self.url,
            &self.ca_pem,
            ADMIN_TOKEN,
            Some((user, groups)),
        ))
        .await
    }

    /// Writes a kubeconfig impersonating `user` in `groups` and returns its path.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> anyhow::Result<PathBuf> {
        let path = self
            .dir
            .path()
            .join(format!("kubeconfig-{}", user.replace([':', '/'], "-")));
        std::fs::write(
            &path,
            kubeconfig_yaml(&self.url, &self.ca_pem, ADMIN_TOKEN, Some((user, groups))),
        )?;
        Ok(path)
    }

    /// Creates the CRDs and waits until the server serves them.
    pub async fn install_crds(&self, crds: &[CustomResourceDefinition]) -> anyhow::Result<()> {
        let client = self.client().await?;
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in crds {
            api.create(&PostParams::default(), crd)
                .await
                .map_err(|e| anyhow::anyhow!("creating CRD {:?}: {e}", crd.metadata.name))?;
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
        Ok(())
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
