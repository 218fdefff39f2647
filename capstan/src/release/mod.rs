//! `capstan release`: a clusterctl provider repository, generated from the code that defines the
//! kinds and the controllers, so that what `clusterctl init` installs cannot drift from what
//! the binary serves.
//!
//! Layout (clusterctl's local repository):
//! `<output>/<type>-<provider>/<version>/{<type>-components.yaml, metadata.yaml, cluster-template*.yaml}`
//! and `<output>/clusterctl.yaml` with a `providers:` entry per package.

pub mod components;
pub mod packages;
pub mod rbac;
pub mod templates;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::json;

/// Release series the repository's metadata.yaml declares: every Capstan version speaks this contract.
const CONTRACT: &str = capstan_api::contract::CONTRACT;

#[derive(clap::Args, Debug)]
pub struct ReleaseArgs {
    /// Directory to write the repository into (created; existing files are replaced).
    #[arg(long)]
    pub output: PathBuf,
    /// The release version (`vMAJOR.MINOR.PATCH`); this binary's version by default.
    #[arg(long)]
    pub version: Option<String>,
    /// The manager image the Deployments run, fully qualified (`<registry>/<repository>:<tag>`:
    /// clusterctl refuses short names); `localhost/capstan:<version>` (a local build) by default.
    #[arg(long)]
    pub image: Option<String>,
}

/// A release version, `vMAJOR.MINOR.PATCH[-pre]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub text: String,
    pub major: u64,
    pub minor: u64,
}

impl std::str::FromStr for Version {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let bad =
            || anyhow::anyhow!("version {s:?} is not vMAJOR.MINOR.PATCH (clusterctl needs semver with a leading v)");
        let core = s.strip_prefix('v').ok_or_else(bad)?;
        let core = core.split(['-', '+']).next().unwrap_or_default();
        let parts: Vec<u64> = core
            .split('.')
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<anyhow::Result<_>>()?;
        let [major, minor, _patch] = parts[..] else {
            return Err(bad());
        };
        Ok(Version {
            text: s.to_string(),
            major,
            minor,
        })
    }
}

pub fn run(args: &ReleaseArgs) -> anyhow::Result<()> {
    let version: Version = match &args.version {
        Some(v) => v.parse()?,
        None => format!("v{}", env!("CARGO_PKG_VERSION")).parse()?,
    };
    let image = args
        .image
        .clone()
        .unwrap_or_else(|| format!("localhost/capstan:{}", version.text));
    check_image(&image)?;
    std::fs::create_dir_all(&args.output).with_context(|| format!("cannot create {}", args.output.display()))?;
    // clusterctl wants absolute file:// URLs.
    let root = args
        .output
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.output.display()))?;
    let config = write_repository(&root, &version, &image)?;
    println!("{}", config.display());
    Ok(())
}

/// Writes every package and clusterctl.yaml under `root`; returns the clusterctl.yaml path.
pub fn write_repository(root: &Path, version: &Version, image: &str) -> anyhow::Result<PathBuf> {
    let mut providers = Vec::new();
    for package in packages::all() {
        let dir = root.join(package.label()).join(&version.text);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let components = dir.join(package.components_file());
        write(
            &components,
            &capstan_api::crd::to_yaml(&components::objects(&package, image))?,
        )?;
        write(&dir.join("metadata.yaml"), &metadata(version))?;
        for t in package.templates.iter().flat_map(|t| t.files()) {
            write(&dir.join(&t.name), &t.text)?;
        }
        providers.push(json!({
            "name": package.name,
            "type": package.kind.clusterctl_type(),
            "url": format!("file://{}", components.display()),
        }));
    }
    let config = root.join("clusterctl.yaml");
    write(&config, &serde_saphyr::to_string(&json!({"providers": providers}))?)?;
    Ok(config)
}

/// clusterctl's `metadata.yaml`: this release series speaks the v1beta2 contract.
pub fn metadata(version: &Version) -> String {
    format!(
        "apiVersion: clusterctl.cluster.x-k8s.io/v1alpha3\nkind: Metadata\nreleaseSeries:\n- major: {}\n  minor: {}\n  contract: {CONTRACT}\n",
        version.major, version.minor
    )
}

/// clusterctl parses the image as a canonical reference: its first path segment must be a
/// registry (a host with a dot or a port, or `localhost`), else `clusterctl init` fails with
/// "repository name must be canonical" long after the release was written.
fn check_image(image: &str) -> anyhow::Result<()> {
    let registry = image.split_once('/').map(|(r, _)| r);
    match registry {
        Some(r) if r.contains('.') || r.contains(':') || r == "localhost" => Ok(()),
        _ => anyhow::bail!(
            "image {image:?} is not fully qualified: write it as <registry>/<repository>:<tag> (clusterctl refuses short names)"
        ),
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_must_name_their_registry() {
        for ok in [
            "localhost/capstan:v1.0.0",
            "registry.example.com/platform/capstan:v1",
            "10.0.0.1:5000/capstan:v1",
        ] {
            check_image(ok).unwrap();
        }
        for bad in ["capstan:v1", "capstan/capstan:v1"] {
            assert!(
                check_image(bad).unwrap_err().to_string().contains("fully qualified"),
                "{bad}"
            );
        }
    }

    #[test]
    fn versions_need_a_v_and_three_numbers() {
        let v: Version = "v1.2.3-rc.1".parse().unwrap();
        assert_eq!((v.major, v.minor), (1, 2));
        for bad in ["1.2.3", "v1.2", "v1.x.3", "v1.2.3.4"] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_repository_has_every_package_in_clusterctl_layout() {
        let dir = tempfile::tempdir().unwrap();
        let version: Version = "v0.3.1".parse().unwrap();
        let config = write_repository(dir.path(), &version, "example/capstan:v0.3.1").unwrap();
        let text = std::fs::read_to_string(&config).unwrap();
        let parsed: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let names: Vec<&str> = parsed["providers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["capstan-kubeadm", "capstan-dcs", "capstan-hcs", "capstan-vsphere"]
        );
        for p in parsed["providers"].as_array().unwrap() {
            let path = p["url"].as_str().unwrap().strip_prefix("file://").unwrap();
            assert!(Path::new(path).is_absolute() && Path::new(path).exists(), "{path}");
        }
        let dcs = dir.path().join("infrastructure-capstan-dcs/v0.3.1");
        for f in [
            "infrastructure-components.yaml",
            "metadata.yaml",
            "cluster-template.yaml",
            "cluster-template-standalone.yaml",
            "cluster-template-standalone-microos.yaml",
        ] {
            assert!(dcs.join(f).exists(), "{f}");
        }
        let meta: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(dcs.join("metadata.yaml")).unwrap()).unwrap();
        assert_eq!(
            meta["releaseSeries"][0],
            json!({"major": 0, "minor": 3, "contract": "v1beta2"})
        );
        assert!(
            dir.path()
                .join("bootstrap-capstan-kubeadm/v0.3.1/bootstrap-components.yaml")
                .exists()
        );
    }

    #[test]
    fn components_are_least_privilege_and_hardened() {
        for package in packages::all() {
            let objects = components::objects(&package, "example/capstan:v1.0.0");
            let namespaces = objects.iter().filter(|o| o["kind"] == "Namespace").count();
            assert_eq!(namespaces, 1, "{}", package.name);
            for role in objects
                .iter()
                .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
            {
                for rule in role["rules"].as_array().unwrap() {
                    for field in ["apiGroups", "resources", "verbs"] {
                        for v in rule[field].as_array().unwrap() {
                            assert_ne!(v, "*", "{}: {rule}", package.name);
                        }
                    }
                    // Secrets are never listed or watched: every read is by name.
                    if rule["resources"].as_array().unwrap().contains(&json!("secrets")) {
                        assert!(!rule["verbs"].as_array().unwrap().contains(&json!("list")), "{rule}");
                    }
                }
            }
            let d = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
            let pod = &d["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
            assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
            let c = &pod["containers"][0];
            assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
            assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
            assert!(c["args"].as_array().unwrap().contains(&json!("--leader-elect")));
            assert!(c["livenessProbe"].is_object() && c["readinessProbe"].is_object());
            for crd in objects.iter().filter(|o| o["kind"] == "CustomResourceDefinition") {
                assert!(
                    crd["metadata"]["labels"]["cluster.x-k8s.io/v1beta2"].is_string(),
                    "{} lacks the contract label",
                    crd["metadata"]["name"]
                );
                assert_eq!(
                    crd["metadata"]["labels"]["cluster.x-k8s.io/provider"],
                    json!(package.label())
                );
            }
        }
    }

    #[test]
    fn options_are_clusterctl_variables_with_defaults() {
        let dcs = packages::all().into_iter().find(|p| p.name == "capstan-dcs").unwrap();
        let args = components::manager_args(&dcs);
        assert!(args.contains(&"--provider=dcs".to_string()));
        assert!(args.contains(&"--dcsmachine-concurrency=${CAPSTAN_MACHINE_CONCURRENCY:=10}".to_string()));
        // Every flag the components pass, defaults filled in, is one the manager accepts.
        for package in packages::all() {
            let mut argv = vec!["capstan".to_string()];
            argv.extend(
                components::manager_args(&package)
                    .iter()
                    .map(|a| match a.split_once("=${") {
                        Some((flag, rest)) => {
                            format!("{flag}={}", rest.split_once(":=").unwrap().1.trim_end_matches('}'))
                        }
                        None => a.clone(),
                    }),
            );
            <crate::Cli as clap::Parser>::try_parse_from(&argv).unwrap_or_else(|e| panic!("{}: {e}", package.name));
        }
    }
}
