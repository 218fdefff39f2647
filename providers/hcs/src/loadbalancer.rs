//! The control-plane endpoint as a dedicated ELB: a load balancer on the cluster's first subnet,
//! a TCP listener on the API server port, a round-robin pool with a TCP health monitor, and each
//! control-plane server as a member. Every step first looks for what an earlier pass (or a
//! manager that crashed before writing status) made — by the id kept in status, else by name —
//! so nothing is created twice.

use capstan_api::core::ApiEndpoint;

use crate::api::{HCSCluster, HCSClusterResources};
use crate::client::HcsClient;
use crate::client::elb::{CreateLoadBalancer, LoadBalancer};
use crate::client::vpc::Subnet;
use crate::provider::ProviderError;

/// The ELB's name: unique per HCSCluster, and how it is found again.
pub fn name(cluster: &HCSCluster) -> String {
    let ns = cluster.metadata.namespace.as_deref().unwrap_or_default();
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    format!("capstan-{ns}-{name}-apiserver")
}

/// Where building the load balancer stands.
pub enum Progress {
    Ready(ApiEndpoint),
    Pending(String),
}

/// Brings the load balancer, listener, pool and health monitor up; ids go into `res` as soon
/// as each exists.
pub async fn ensure(
    client: &HcsClient,
    cluster: &HCSCluster,
    subnet: &Subnet,
    port: u16,
    res: &mut HCSClusterResources,
) -> Result<Progress, ProviderError> {
    let neutron = subnet.neutron_subnet_id.clone().ok_or_else(|| {
        ProviderError::Spec(format!(
            "subnet {} has no neutron_subnet_id, which the ELB VIP needs",
            subnet.id
        ))
    })?;
    let lb = load_balancer(client, cluster, subnet, &neutron, res).await?;
    match lb.provisioning_status.as_str() {
        "ACTIVE" => {}
        "ERROR" => {
            return Err(ProviderError::LoadBalancer(format!(
                "load balancer {} is in state ERROR; delete it in HCS to have it created again",
                lb.id
            )));
        }
        other => return Ok(Progress::Pending(format!("load balancer {} is {other}", lb.id))),
    }
    let listener = match &res.listener_id {
        Some(id) => id.clone(),
        None => {
            let found = client.listeners(&lb.id).await?;
            let id = match found.into_iter().find(|l| l.protocol_port == port) {
                Some(l) => l.id,
                None => client.create_tcp_listener(&lb.id, &name(cluster), port).await?.id,
            };
            res.listener_id = Some(id.clone());
            id
        }
    };
    let pool = match &res.pool_id {
        Some(id) => id.clone(),
        None => {
            let found = client.pools(&lb.id).await?;
            let id = match found.into_iter().next() {
                Some(p) => p.id,
                None => client.create_tcp_pool(&listener, &name(cluster)).await?.id,
            };
            res.pool_id = Some(id.clone());
            id
        }
    };
    if res.health_monitor_id.is_none() {
        let id = match client.health_monitors(&pool).await?.into_iter().next() {
            Some(m) => m.id,
            None => client.create_tcp_health_monitor(&pool, port).await?.id,
        };
        res.health_monitor_id = Some(id);
    }
    res.member_subnet_id = Some(neutron);
    Ok(Progress::Ready(ApiEndpoint {
        host: Some(lb.vip_address),
        port: Some(i32::from(port)),
    }))
}

/// The cluster's load balancer: the recorded one if it still exists, else one with its name,
/// else a new one.
async fn load_balancer(
    client: &HcsClient,
    cluster: &HCSCluster,
    subnet: &Subnet,
    neutron: &str,
    res: &mut HCSClusterResources,
) -> Result<LoadBalancer, ProviderError> {
    if let Some(lb) = find(client, cluster, res).await? {
        return Ok(lb);
    }
    let spec = cluster.spec.control_plane_load_balancer.clone().unwrap_or_default();
    let zones = if spec.availability_zones.is_empty() {
        cluster
            .spec
            .availability_zones
            .iter()
            .take(1)
            .map(|z| z.name.clone())
            .collect()
    } else {
        spec.availability_zones
    };
    let lb = client
        .create_load_balancer(&CreateLoadBalancer {
            name: name(cluster),
            vip_subnet_cidr_id: neutron.to_string(),
            vip_address: spec.vip_address,
            availability_zone_list: zones,
            vpc_id: Some(subnet.vpc_id.clone()),
            description: Some("Kubernetes API server of a Capstan cluster".into()),
        })
        .await?;
    *res = HCSClusterResources {
        load_balancer_id: Some(lb.id.clone()),
        ..Default::default()
    };
    Ok(lb)
}

/// The recorded load balancer, or one found by name (a record lost or never written). A
/// different id than recorded resets the rest of the record: it belonged to another one.
async fn find(
    client: &HcsClient,
    cluster: &HCSCluster,
    res: &mut HCSClusterResources,
) -> Result<Option<LoadBalancer>, ProviderError> {
    if let Some(id) = &res.load_balancer_id {
        match client.get_load_balancer(id).await {
            Ok(lb) => return Ok(Some(lb)),
            Err(e) if e.is_not_found() => *res = HCSClusterResources::default(),
            Err(e) => return Err(e.into()),
        }
    }
    let mut found = client.find_load_balancers(&name(cluster)).await?;
    if found.len() > 1 {
        tracing::warn!(
            count = found.len(),
            "several load balancers carry this cluster's name; using the first"
        );
    }
    if found.is_empty() {
        return Ok(None);
    }
    let lb = found.swap_remove(0);
    if res.load_balancer_id.as_deref() != Some(lb.id.as_str()) {
        *res = HCSClusterResources {
            load_balancer_id: Some(lb.id.clone()),
            ..Default::default()
        };
    }
    Ok(Some(lb))
}

/// Takes the load balancer down in the order ELB demands (members, monitor, pool, listener,
/// then the load balancer). `true` once nothing is left.
pub async fn delete(
    client: &HcsClient,
    cluster: &HCSCluster,
    res: &mut HCSClusterResources,
) -> Result<bool, ProviderError> {
    let Some(lb) = find(client, cluster, res).await? else {
        *res = HCSClusterResources::default();
        return Ok(true);
    };
    if lb.provisioning_status == "PENDING_DELETE" {
        return Ok(false);
    }
    for pool in client.pools(&lb.id).await? {
        for member in client.members(&pool.id).await? {
            client.remove_member(&pool.id, &member.id).await?;
        }
        for monitor in client.health_monitors(&pool.id).await? {
            client.delete_health_monitor(&monitor.id).await?;
        }
        client.delete_pool(&pool.id).await?;
    }
    for listener in client.listeners(&lb.id).await? {
        client.delete_listener(&listener.id).await?;
    }
    client.delete_load_balancer(&lb.id).await?;
    // The delete may be asynchronous: the next pass confirms it is gone.
    Ok(false)
}
