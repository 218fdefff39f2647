//! VMware's vCenter simulator (vcsim), built by `hack/testenv.sh` from Debian's govmomi package.

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

impl Vcsim {
    pub fn start() -> anyhow::Result<Self> {
        let bin = std::env::var_os("CAPSTAN_VCSIM").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/capstan/vcsim")
        });
        if !bin.is_file() {
            anyhow::bail!(
                "{} not found (set CAPSTAN_VCSIM or run `eval \"$(hack/testenv.sh)\"`)",
                bin.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("vcsim.log");
        let proc = ChildGuard::spawn("vcsim", Command::new(&bin), &log)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text
                .lines()
                .find(|l| l.starts_with("https://") || l.starts_with("http://"))
            {
                return Ok(Self {
                    proc,
                    url: line.trim().to_string(),
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

    pub fn log_tail(&self, n: usize) -> String {
        self.proc.log_tail(n)
    }
}
