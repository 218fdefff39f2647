//! Where a machine's VM goes: its datacenter, folder, resource pool, datastore and port groups,
//! from the VCenterMachine, overridden by the failure domain the Machine was placed in. Names
//! are inventory paths relative to the datacenter's `vm`, `host`, `datastore` and `network`
//! folders, or absolute paths; nothing is guessed (no "the only one" defaults, no wildcards).

use crate::api::{VCenterCluster, VCenterFailureDomain, VCenterMachineSpec};
use crate::client::{MoRef, NicBacking, UuidKind, VirtualDevice, VsphereClient};
use crate::error::{Inventory, ProviderError};

/// `DC0` or `/DC0` → `/DC0`.
pub fn datacenter_path(name: &str) -> String {
    format!("/{}", name.trim_matches('/'))
}

/// `given` under the datacenter's `kind` folder, unless it is an absolute path already.
fn under(dc: &str, kind: &str, given: &str) -> String {
    if given.starts_with('/') {
        given.to_string()
    } else if given.is_empty() {
        format!("{dc}/{kind}")
    } else {
        format!("{dc}/{kind}/{}", given.trim_end_matches('/'))
    }
}

async fn find(client: &VsphereClient, what: Inventory, path: &str) -> Result<MoRef, ProviderError> {
    client
        .find_placement(path)
        .await?
        .ok_or_else(|| ProviderError::not_found(what, path))
}

/// The failure domain `name` of the cluster.
pub fn failure_domain<'a>(
    cluster: &'a VCenterCluster,
    name: Option<&str>,
) -> Result<Option<&'a VCenterFailureDomain>, ProviderError> {
    let Some(name) = name else { return Ok(None) };
    cluster
        .spec
        .failure_domains
        .iter()
        .find(|f| f.name == name)
        .map(Some)
        .ok_or_else(|| ProviderError::not_found(Inventory::FailureDomain, name))
}

/// The datacenter a machine (in failure domain `fd`) lives in, as an inventory path.
pub fn machine_datacenter(cluster: &VCenterCluster, fd: Option<&VCenterFailureDomain>) -> String {
    datacenter_path(
        fd.and_then(|f| f.datacenter.as_deref())
            .unwrap_or(&cluster.spec.datacenter),
    )
}

pub async fn datacenter(client: &VsphereClient, path: &str) -> Result<MoRef, ProviderError> {
    find(client, Inventory::Datacenter, path).await
}

/// The VM folder: the machine's, else the datacenter's root VM folder.
pub async fn folder(client: &VsphereClient, dc: &str, folder: Option<&str>) -> Result<MoRef, ProviderError> {
    find(client, Inventory::Folder, &under(dc, "vm", folder.unwrap_or(""))).await
}

/// Looks like `5c2a0b8e-6f1d-4c39-9a57-0d3e7b1f2a64`.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The source VM or template, by instance UUID, path or name.
pub async fn template(client: &VsphereClient, dc: &str, dc_ref: &MoRef, name: &str) -> Result<MoRef, ProviderError> {
    if is_uuid(name)
        && let Some(vm) = client.find_vm_by_uuid(name, UuidKind::Instance, Some(dc_ref)).await?
    {
        return Ok(vm);
    }
    client
        .find_placement(&under(dc, "vm", name))
        .await?
        .ok_or_else(|| ProviderError::not_found(Inventory::Template, name))
}

/// A port group and how a NIC connects to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub backing: NicBacking,
    /// The distributed port group's key, to recognise a NIC already on it.
    pub portgroup_key: Option<String>,
}

impl Network {
    /// Whether `nic` is connected to this network.
    pub fn carries(&self, nic: &VirtualDevice) -> bool {
        match &self.portgroup_key {
            Some(key) => nic
                .raw
                .path("backing.port.portgroupKey")
                .is_some_and(|k| k.text == *key),
            None => nic.raw.path("backing.deviceName").is_some_and(|n| n.text == self.name),
        }
    }
}

async fn network(client: &VsphereClient, dc: &str, given: &str) -> Result<Network, ProviderError> {
    let path = under(dc, "network", given);
    let moref = find(client, Inventory::Network, &path).await?;
    let name = path.rsplit('/').next().unwrap_or(given).to_string();
    match moref.kind.as_str() {
        "Network" => Ok(Network {
            name: name.clone(),
            backing: NicBacking::Network {
                name,
                network: Some(moref),
            },
            portgroup_key: None,
        }),
        "DistributedVirtualPortgroup" => {
            let pg = client
                .retrieve_properties(&moref, &["key", "config.distributedVirtualSwitch"])
                .await?;
            let key = pg.text("key").map(str::to_string);
            let switch = pg.get("config.distributedVirtualSwitch").and_then(MoRef::from_node);
            let (Some(key), Some(switch)) = (key, switch) else {
                return Err(ProviderError::not_found(Inventory::Network, path));
            };
            let dvs = client.retrieve_properties(&switch, &["uuid"]).await?;
            let switch_uuid = dvs
                .text("uuid")
                .ok_or_else(|| ProviderError::not_found(Inventory::Network, &path))?
                .to_string();
            Ok(Network {
                name,
                backing: NicBacking::DistributedPort {
                    switch_uuid,
                    portgroup_key: key.clone(),
                },
                portgroup_key: Some(key),
            })
        }
        other => Err(ProviderError::Spec(format!(
            "network {given:?} is a {other}; only standard and distributed port groups are supported"
        ))),
    }
}

/// Everything a clone needs to know of where it goes.
#[derive(Debug, Clone)]
pub struct Placement {
    pub datacenter: MoRef,
    pub folder: MoRef,
    pub pool: Option<MoRef>,
    pub datastore: Option<MoRef>,
    /// One per `network.devices[]`, in order.
    pub networks: Vec<Network>,
}

pub async fn resolve(
    client: &VsphereClient,
    cluster: &VCenterCluster,
    spec: &VCenterMachineSpec,
    fd: Option<&VCenterFailureDomain>,
) -> Result<Placement, ProviderError> {
    let dc = machine_datacenter(cluster, fd);
    let datacenter = datacenter(client, &dc).await?;
    let folder = folder(client, &dc, spec.folder.as_deref()).await?;
    let pool_path = match (&spec.resource_pool, fd) {
        (Some(pool), _) => Some((Inventory::ResourcePool, under(&dc, "host", pool))),
        (None, Some(fd)) => Some((
            Inventory::ComputeCluster,
            format!("{}/Resources", under(&dc, "host", &fd.compute_cluster)),
        )),
        (None, None) => None,
    };
    let pool = match pool_path {
        Some((what, path)) => Some(find(client, what, &path).await?),
        None => None,
    };
    let datastore = match fd.and_then(|f| f.datastore.as_deref()).or(spec.datastore.as_deref()) {
        Some(ds) => Some(find(client, Inventory::Datastore, &under(&dc, "datastore", ds)).await?),
        None => None,
    };
    let mut networks = Vec::new();
    for (i, device) in spec.network.devices.iter().enumerate() {
        let name = fd.and_then(|f| f.networks.get(i)).unwrap_or(&device.network_name);
        networks.push(network(client, &dc, name).await?);
    }
    Ok(Placement {
        datacenter,
        folder,
        pool,
        datastore,
        networks,
    })
}

/// Checks a failure domain's inventory exists (for the cluster's `Ready`).
pub async fn check_failure_domain(
    client: &VsphereClient,
    cluster: &VCenterCluster,
    fd: &VCenterFailureDomain,
) -> Result<(), ProviderError> {
    let dc = machine_datacenter(cluster, Some(fd));
    datacenter(client, &dc).await?;
    let cc = format!("{}/Resources", under(&dc, "host", &fd.compute_cluster));
    find(client, Inventory::ComputeCluster, &cc).await?;
    if let Some(ds) = &fd.datastore {
        find(client, Inventory::Datastore, &under(&dc, "datastore", ds)).await?;
    }
    for n in &fd.networks {
        find(client, Inventory::Network, &under(&dc, "network", n)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(datacenter_path("DC0"), "/DC0");
        assert_eq!(datacenter_path("/DC0/"), "/DC0");
        assert_eq!(under("/DC0", "vm", "tpl/ubuntu"), "/DC0/vm/tpl/ubuntu");
        assert_eq!(under("/DC0", "vm", ""), "/DC0/vm");
        assert_eq!(under("/DC0", "vm", "/Other/vm/x"), "/Other/vm/x");
        assert!(is_uuid("5c2a0b8e-6f1d-4c39-9a57-0d3e7b1f2a64"));
        assert!(!is_uuid("DC0_H0_VM0"));
    }
}
