//! VMware's vCenter simulator (vcsim), govmomi's own program built by `hack/testenv.sh` from its
//! Go module (`hack/peers/vcsim`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_localplane::ChildGuard;

/// A running vcsim serving the vim25 SOAP API over HTTPS on 127.0.0.1.
pub struct Vcsim {
    proc: ChildGuard,
    url: String,
    _dir: tempfile::TempDir,
}

/// A serving certificate for vcsim from a CA of the test's own (PEM), so clients under test
/// verify TLS instead of skipping verification.
pub type VcsimTls = capstan_simkit::tls::PemPki;

/// A CA and a certificate for 127.0.0.1 signed by it.
pub fn test_tls() -> anyhow::Result<VcsimTls> {
    Ok(capstan_simkit::tls::generate_pem(
        "capstan-vcsim-test-ca",
        std::net::Ipv4Addr::LOCALHOST.into(),
    )?)
}

/// How [`Vcsim::start_with`] runs vcsim; the default is what [`Vcsim::start`] does.
#[derive(Default)]
pub struct VcsimOptions {
    /// Serve this certificate instead of vcsim's built-in one.
    pub tls: Option<VcsimTls>,
    /// Accept only these credentials (by default vcsim accepts any non-empty pair).
    pub credentials: Option<(String, String)>,
}

impl Vcsim {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(VcsimOptions::default())
    }

    pub fn start_with(options: VcsimOptions) -> anyhow::Result<Self> {
        // The newest vcsim hack/testenv.sh built, unless CAPSTAN_VCSIM names one.
        let from_cache = || {
            let mut built: Vec<PathBuf> = std::fs::read_dir(capstan_localplane::cache_dir())
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("vcsim-v"))
                })
                .collect();
            built.sort();
            built.pop()
        };
        let Some(bin) = std::env::var_os("CAPSTAN_VCSIM")
            .map(PathBuf::from)
            .or_else(from_cache)
            .filter(|b| b.is_file())
        else {
            anyhow::bail!("vcsim not found: set CAPSTAN_VCSIM or run `eval \"$(hack/testenv.sh)\"`");
        };
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("vcsim.log");
        let mut cmd = Command::new(&bin);
        // Port 0: vcsim binds a free port and prints `export GOVC_URL=<url> GOVC_SIM_PID=<pid>`.
        cmd.args(["-l", "127.0.0.1:0", "-E", "-"]);
        if let Some(tls) = &options.tls {
            let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
            std::fs::write(&cert, &tls.cert_pem)?;
            std::fs::write(&key, &tls.key_pem)?;
            cmd.arg("-tlscert").arg(&cert).arg("-tlskey").arg(&key);
        }
        if let Some((user, password)) = &options.credentials {
            cmd.args(["-username", user, "-password", password]);
        }
        let proc = ChildGuard::spawn("vcsim", cmd, &log)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(url) = text
                .lines()
                .filter_map(|l| l.strip_prefix("export GOVC_URL="))
                .find_map(|rest| rest.split_whitespace().next())
            {
                return Ok(Self {
                    proc,
                    url: url.to_string(),
                    _dir: dir,
                });
            }
            if Instant::now() > deadline {
                anyhow::bail!("vcsim printed no URL:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The SDK URL, with vcsim's default credentials in it (`https://user:pass@127.0.0.1:PORT/sdk`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SDK URL without credentials, as a user writes it in `VCenterCluster.spec.server`.
    pub fn server(&self) -> String {
        match self
            .url
            .split_once("://")
            .and_then(|(scheme, rest)| Some((scheme, rest.split_once('@')?.1)))
        {
            Some((scheme, host)) => format!("{scheme}://{host}"),
            None => self.url.clone(),
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.proc.log_tail(n)
    }
}
