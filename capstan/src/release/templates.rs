//! The cluster templates of an infrastructure package, in clusterctl's shape: the default
//! `cluster-template.yaml` with a KubeadmControlPlane, and the standalone flavors (control-plane
//! Machines of their own, for Capstan's standalone core) built from the same files `capstan up`
//! uses, so that the worker half of every template exists once.
//!
//! The files are joined as text, not parsed and re-serialised: a YAML round trip would quote
//! `${CONTROL_PLANE_MACHINE_COUNT}` and the integer it becomes would then be a string.

/// One template file of a release: its name in the version folder and its text.
pub struct TemplateFile {
    pub name: String,
    pub text: String,
}

/// The source files of one cloud's templates.
pub struct CloudTemplates {
    /// Cluster, infrastructure cluster and the workers (`templates/<cloud>/cluster-template.yaml`).
    pub cluster: &'static str,
    /// One control-plane Machine for the standalone core, with `${CONTROL_PLANE_MACHINE_INDEX}`.
    pub control_plane_machine: &'static str,
    /// The KubeadmControlPlane and its machine template.
    pub control_plane_kcp: &'static str,
    /// Whether kube-vip serves the endpoint (no load balancer in that cloud).
    pub kube_vip: bool,
    /// The MicroOS (Ignition) pair, where the cloud has one.
    pub microos: Option<(&'static str, &'static str)>,
    /// Values the standalone flavor fixes because it renders exactly one control-plane Machine.
    pub standalone_values: &'static [(&'static str, &'static str)],
}

const KUBE_VIP: &str = include_str!("../../../templates/clusterctl/kube-vip.yaml");
const KUBE_VIP_MARKER: &str = "    # capstan:kube-vip\n";
const CONTROL_PLANE_REF: &str = "  controlPlaneRef:
    apiGroup: controlplane.cluster.x-k8s.io
    kind: KubeadmControlPlane
    name: ${CLUSTER_NAME}-control-plane
";

impl CloudTemplates {
    pub fn files(&self) -> Vec<TemplateFile> {
        let mut files = vec![
            TemplateFile {
                name: "cluster-template.yaml".into(),
                text: self.with_kcp(),
            },
            TemplateFile {
                name: "cluster-template-standalone.yaml".into(),
                text: self.standalone(self.cluster, self.control_plane_machine),
            },
        ];
        if let Some((cluster, machine)) = self.microos {
            files.push(TemplateFile {
                name: "cluster-template-standalone-microos.yaml".into(),
                text: self.standalone(cluster, machine),
            });
        }
        files
    }

    /// The KCP file's header, then the Cluster with its `controlPlaneRef`, the workers, the KCP.
    fn with_kcp(&self) -> String {
        let (header, kcp) = split_header(self.control_plane_kcp);
        let kcp = if self.kube_vip {
            let (_, block) = split_header(KUBE_VIP);
            kcp.replacen(KUBE_VIP_MARKER, block, 1)
        } else {
            kcp.replacen(KUBE_VIP_MARKER, "", 1)
        };
        let (_, cluster) = split_header(self.cluster);
        // The first document is the Cluster; its `spec:` is the first line that says so.
        let cluster = cluster.replacen("\nspec:\n", &format!("\nspec:\n{CONTROL_PLANE_REF}"), 1);
        format!("{header}{cluster}---\n{kcp}")
    }

    /// The standalone shape with one control-plane Machine (clusterctl cannot repeat a file).
    fn standalone(&self, cluster: &str, machine: &str) -> String {
        let mut machine = machine.replace("${CONTROL_PLANE_MACHINE_INDEX}", "0");
        for (var, value) in self.standalone_values {
            machine = machine.replace(&format!("${{{var}}}"), value);
        }
        let (_, machine) = split_header(&machine);
        format!(
            "# Flavor `standalone`: one control-plane Machine without KubeadmControlPlane, for Capstan's\n\
             # standalone core (and upstream core without a control-plane provider).\n{}---\n{machine}",
            cluster
        )
    }
}

/// The leading comment lines of a file, and the rest.
fn split_header(text: &str) -> (&str, &str) {
    let end = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.len() + 1)
        .sum::<usize>()
        .min(text.len());
    text.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dcs() -> CloudTemplates {
        super::super::packages::dcs_templates()
    }

    #[test]
    fn the_default_has_a_kcp_with_kube_vip_and_the_cluster_points_at_it() {
        let text = dcs().with_kcp();
        assert!(text.contains("kind: KubeadmControlPlane"), "{text}");
        assert!(text.contains("replicas: ${CONTROL_PLANE_MACHINE_COUNT}\n"));
        assert!(text.contains("\n    - path: /etc/kubernetes/manifests/kube-vip.yaml\n"));
        assert!(!text.contains("capstan:kube-vip"));
        let cluster_doc = text.split("\n---\n").next().unwrap();
        assert!(cluster_doc.contains(CONTROL_PLANE_REF), "{cluster_doc}");
        assert!(
            !text.contains("kind: Machine\n"),
            "no standalone Machine in the KCP template"
        );
        // Every document parses once the variables are filled.
        let filled = text
            .replace("${CONTROL_PLANE_MACHINE_COUNT}", "3")
            .replace("${KUBERNETES_VERSION}", "v1.34.4");
        for doc in filled.split("\n---\n") {
            let v: serde_json::Value = serde_saphyr::from_str(doc).unwrap();
            assert!(v["kind"].is_string(), "{doc}");
        }
        let kcp = filled
            .split("\n---\n")
            .find(|d| d.lines().any(|l| l == "kind: KubeadmControlPlane"))
            .unwrap();
        let v: serde_json::Value = serde_saphyr::from_str(kcp).unwrap();
        assert_eq!(v["spec"]["replicas"], 3);
        let files = &v["spec"]["kubeadmConfigSpec"]["files"];
        assert_eq!(files[0]["path"], "/etc/kubernetes/manifests/kube-vip.yaml");
        assert!(
            v["spec"]["kubeadmConfigSpec"]["preKubeadmCommands"][0]
                .as_str()
                .unwrap()
                .contains("super-admin.conf")
        );
    }

    #[test]
    fn the_standalone_flavor_has_one_control_plane_machine() {
        let text = dcs().standalone(dcs().cluster, dcs().control_plane_machine);
        assert_eq!(text.matches("kind: Machine\n").count(), 1);
        assert!(text.contains("name: ${CLUSTER_NAME}-control-plane-0\n"));
        assert!(!text.contains("CONTROL_PLANE_MACHINE_INDEX}"));
        assert!(!text.contains("controlPlaneRef"));
    }

    #[test]
    fn headers_split_at_the_first_line_that_is_not_a_comment() {
        assert_eq!(split_header("# a\n# b\nkind: X\n"), ("# a\n# b\n", "kind: X\n"));
        assert_eq!(split_header("kind: X\n"), ("", "kind: X\n"));
    }
}
