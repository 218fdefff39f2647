//! `capstan render`: the bootstrap document a KubeadmConfig would get, computed offline from
//! YAML files (no API server), for reviewing changes and debugging nodes that fail to join.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use capstan_kubeadm::render::DocumentKind;

#[derive(clap::Args)]
pub struct RenderArgs {
    /// KubeadmConfig YAML.
    #[arg(long)]
    pub config: PathBuf,
    /// Cluster YAML (cluster.x-k8s.io/v1beta2).
    #[arg(long)]
    pub cluster: PathBuf,
    /// Machine YAML (cluster.x-k8s.io/v1beta2); its labels and spec.version decide the document.
    #[arg(long)]
    pub machine: PathBuf,
    /// A kubeadm-layout PKI directory (ca.crt/ca.key, etcd/ca.*, front-proxy-ca.*, sa.*); missing
    /// files are generated for the preview.
    #[arg(long)]
    pub pki_dir: Option<PathBuf>,
    /// Force the document kind instead of deriving it from the Machine and Cluster.
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    Init,
    JoinControlPlane,
    JoinWorker,
}

fn read<T: serde::de::DeserializeOwned>(path: &PathBuf) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

pub fn run(args: &RenderArgs) -> anyhow::Result<()> {
    let config = read(&args.config)?;
    let cluster = read(&args.cluster)?;
    let machine = read(&args.machine)?;
    let kind = args.kind.map(|k| match k {
        Kind::Init => DocumentKind::InitControlPlane,
        Kind::JoinControlPlane => DocumentKind::JoinControlPlane,
        Kind::JoinWorker => DocumentKind::JoinWorker,
    });
    let rendered = capstan_kubeadm::offline::render(&config, &cluster, &machine, args.pki_dir.as_deref(), kind)?;
    for note in &rendered.notes {
        eprintln!("note: {note}");
    }
    std::io::stdout().write_all(rendered.document.as_bytes())?;
    Ok(())
}
