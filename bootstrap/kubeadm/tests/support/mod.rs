//! The render input the Ignition tests start from: a CA pair and the three kubeadm documents
//! of one kubeadm API version, the worker's join carrying CAPI's uninitialized taint.

use capstan_kubeadm::pki::NodeFile;
use capstan_kubeadm::render::CloudInitInput;

pub fn input(api_version: &str, ca_crt: &str, ca_key: &str) -> CloudInitInput {
    let cert = |path: &str, permissions, content: &str| NodeFile {
        path: path.into(),
        permissions,
        content: content.into(),
    };
    CloudInitInput {
        certificates: vec![
            cert("/etc/kubernetes/pki/ca.crt", "0640", ca_crt),
            cert("/etc/kubernetes/pki/ca.key", "0600", ca_key),
        ],
        cluster_configuration: format!("apiVersion: kubeadm.k8s.io/{api_version}\nkind: ClusterConfiguration\n"),
        init_configuration: format!("apiVersion: kubeadm.k8s.io/{api_version}\nkind: InitConfiguration\n"),
        join_configuration: format!(
            "apiVersion: kubeadm.k8s.io/{api_version}\nkind: JoinConfiguration\nnodeRegistration:\n  taints:\n  - effect: NoSchedule\n    key: node.cluster.x-k8s.io/uninitialized\n"
        ),
        ..Default::default()
    }
}
