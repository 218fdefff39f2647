//! The least-privilege permissions of each provider package: exactly the calls its controllers
//! make, resource by resource, so that `clusterctl init` grants nothing more. The e2e test runs
//! every manager under the ServiceAccount these rules are bound to; a missing rule fails it.

use k8s_openapi::api::rbac::v1::PolicyRule;

/// What a controller does with one kind of object.
#[derive(Clone, Copy)]
pub enum Access {
    /// Reads it (`get`, and `list`/`watch` for the informer).
    Read,
    /// Reads one object by name, never lists, and patches its metadata (the credentials
    /// Secret gets an owner reference and the move label).
    GetPatch,
    /// Reads it and changes its metadata or spec (finalizers, owner references).
    ReadPatch,
    /// Patches a status subresource.
    PatchStatus,
    /// Creates, reads by name, replaces and patches, never lists (secrets it owns).
    Own,
    /// Creates, reads by name and deletes (the init lock).
    CreateGetDelete,
    /// Reads, creates and deletes (IP address claims and addresses).
    Manage,
    /// Records events.
    Record,
    /// Leader election.
    Lease,
}

impl Access {
    fn verbs(self) -> &'static [&'static str] {
        match self {
            Access::Read => &["get", "list", "watch"],
            Access::GetPatch => &["get", "patch"],
            Access::ReadPatch => &["get", "list", "watch", "patch"],
            Access::PatchStatus => &["patch"],
            Access::Own => &["create", "get", "patch", "update"],
            Access::CreateGetDelete => &["create", "get", "delete"],
            Access::Manage => &["create", "delete", "get", "list", "patch", "watch"],
            Access::Record => &["create", "patch"],
            Access::Lease => &["create", "get", "patch", "update"],
        }
    }
}

/// One rule: `access` on `resources` of `group`.
pub fn rule(group: &str, resources: &[&str], access: Access) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: access.verbs().iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

const CORE: &str = "";
const CAPI: &str = "cluster.x-k8s.io";
const INFRA: &str = "infrastructure.cluster.x-k8s.io";
const IPAM: &str = "ipam.cluster.x-k8s.io";

/// What every manager needs whatever it runs: Cluster API objects to read, events to record.
fn common() -> Vec<PolicyRule> {
    vec![
        rule(CAPI, &["clusters", "machines"], Access::Read),
        rule("events.k8s.io", &["events"], Access::Record),
    ]
}

/// An infrastructure provider on the machine lifecycle core: its cluster and machine kinds
/// (finalizers, status), the bootstrap data and cloud credentials Secrets (read by name; the
/// credentials get an owner reference so that `clusterctl move` takes them along), the
/// workload kubeconfig (read by name), and CAPI IPAM claims.
pub fn infrastructure(cluster_plural: &str, machine_plural: &str) -> Vec<PolicyRule> {
    infrastructure_with(cluster_plural, machine_plural, Access::Read)
}

fn infrastructure_with(cluster_plural: &str, machine_plural: &str, addresses: Access) -> Vec<PolicyRule> {
    let mut rules = common();
    rules.extend([
        rule(INFRA, &[cluster_plural, machine_plural], Access::ReadPatch),
        rule(
            INFRA,
            &[&format!("{cluster_plural}/status"), &format!("{machine_plural}/status")],
            Access::PatchStatus,
        ),
        rule(CORE, &["secrets"], Access::GetPatch),
        rule(IPAM, &["ipaddressclaims"], Access::Manage),
        rule(IPAM, &["ipaddresses"], addresses),
    ]);
    rules
}

/// DCS also runs the IP/hostname pool controller: it answers claims by creating addresses.
pub fn dcs() -> Vec<PolicyRule> {
    let mut rules = infrastructure_with("dcsclusters", "dcsmachines", Access::Manage);
    rules.extend([
        rule(INFRA, &["dcsiphostnamepools"], Access::Read),
        rule(INFRA, &["dcsiphostnamepools/status"], Access::PatchStatus),
        rule(IPAM, &["ipaddressclaims/status"], Access::PatchStatus),
    ]);
    rules
}

/// The kubeadm bootstrap provider: its configs, the certificate and data Secrets it owns, the
/// workload kubeconfig, and the init lock ConfigMap.
pub fn kubeadm() -> Vec<PolicyRule> {
    let mut rules = common();
    rules.extend([
        rule("bootstrap.cluster.x-k8s.io", &["kubeadmconfigs"], Access::ReadPatch),
        rule(
            "bootstrap.cluster.x-k8s.io",
            &["kubeadmconfigs/status"],
            Access::PatchStatus,
        ),
        rule(CORE, &["secrets"], Access::Own),
        rule(CORE, &["configmaps"], Access::CreateGetDelete),
    ]);
    rules
}

/// The leader-election Role in the provider's own namespace.
pub fn leader_election() -> Vec<PolicyRule> {
    vec![rule("coordination.k8s.io", &["leases"], Access::Lease)]
}
