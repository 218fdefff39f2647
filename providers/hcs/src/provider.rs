//! The HCS implementation of the lifecycle core's [`InfraProvider`]: ECS servers tagged with the
//! HCSMachine's UID and created with an `X-Client-Token` derived from it (a server may not be
//! listed for a while after its create job starts, so a repeated create must not make a second
//! one), booted by their `user_data`; control-plane servers registered in the cluster's ELB.

use std::sync::Arc;

use base64::Engine;
use capstan_api::core::{FailureDomain, MachineAddress, MachineAddressType};
use capstan_lifecycle::status::PendingOperation;
use capstan_lifecycle::{
    Attachment, Boot, BootstrapData, BootstrapFormat, Cleanup, CloudError, ClusterInfra, ClusterProgress, ClusterScope,
    InfraProvider, Instance, InstanceState, MachineScope, Operation, OperationState, Removal,
};
use capstan_runtime::metrics::Metrics;

use crate::api::{HCSCluster, HCSClusterResources, HCSMachine, HCSMachineResources};
use crate::client::ecs::{CreateServer, IdRef, JobState, Nic, PowerAction, Server, Tag, USER_DATA_LIMIT, Volume};
use crate::client::vpc::Subnet;
use crate::client::{HcsClient, HcsError};
use crate::loadbalancer;

/// ECS tags Capstan stamps on its servers.
pub const TAG_UID: &str = "capstan-uid";
pub const TAG_CLUSTER: &str = "capstan-cluster";
pub const TAG_NAMESPACE: &str = "capstan-namespace";

/// Error codes with a meaning of their own.
const QUOTA_EXCEEDED: &str = "Ecs.0001";
/// An `X-Client-Token` reused with a different request: that token is spent.
const TOKEN_REUSED: [&str; 3] = ["Ecs.0122", "Ecs.0123", "Ecs.0124"];
/// How many create attempts (each with its own client token) one machine gets.
const MAX_CREATE_ATTEMPTS: u32 = 16;

pub type HcsClientPool = capstan_cloudkit::ClientPool<HcsClient>;

/// The `hcs://` providerID of a server: what Capstan's HCS templates have the kubelet set
/// (`hcs://{{ v1.instance_id }}`, the server id cloud-init reads from the metadata service).
pub fn provider_id(server_id: &str) -> String {
    format!("hcs://{server_id}")
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("invalid credentials secret: {0}")]
    Credentials(String),
    #[error("invalid spec: {0}")]
    Spec(String),
    #[error("image {0:?} not found (IMS lists no active image of that name)")]
    ImageNotFound(String),
    #[error("flavor {0:?} not found{1}")]
    FlavorNotFound(String, String),
    #[error("subnet {0:?} not found")]
    SubnetNotFound(String),
    #[error(
        "the bootstrap data is {0} bytes; ECS takes at most {USER_DATA_LIMIT} bytes of user_data (before base64), so the server was not created (an Ignition 3.x config is shrunk to a gzip stub first; this one does not fit even so)"
    )]
    UserDataTooLarge(usize),
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    LoadBalancer(String),
    #[error("{0} create attempts failed; delete the HCSMachine to start afresh")]
    TooManyAttempts(u32),
    #[error(transparent)]
    Hcs(#[from] HcsError),
}

/// What goes into ECS `user_data` (before the API's base64). cloud-config as is; an Ignition
/// config raw too — Ignition's `openstack` platform reads user data unmodified and does not
/// gunzip it — unless it is over the ECS limit, when a 3.x config becomes a small stub whose
/// `config.replace` carries it gzip-compressed in a `data:` URL. Nothing is ever truncated.
fn user_data(bootstrap: &BootstrapData) -> Result<Vec<u8>, ProviderError> {
    let too_large = |n: usize| ProviderError::UserDataTooLarge(n);
    if bootstrap.value.len() <= USER_DATA_LIMIT {
        return Ok(bootstrap.value.clone());
    }
    if bootstrap.format != BootstrapFormat::Ignition {
        return Err(too_large(bootstrap.value.len()));
    }
    let stub =
        capstan_lifecycle::ignition::replace_stub(&bootstrap.value).map_err(|_| too_large(bootstrap.value.len()))?;
    if stub.len() > USER_DATA_LIMIT {
        return Err(too_large(stub.len()));
    }
    Ok(stub)
}

impl ProviderError {
    /// Recognises the ECS answers that deserve their own reason.
    fn classify(e: HcsError) -> Self {
        match e.code() {
            Some(QUOTA_EXCEEDED) => ProviderError::QuotaExceeded(e.to_string()),
            _ => ProviderError::Hcs(e),
        }
    }
}

impl From<capstan_lifecycle::credentials::CredentialsError> for ProviderError {
    fn from(e: capstan_lifecycle::credentials::CredentialsError) -> Self {
        ProviderError::Credentials(e.to_string())
    }
}

impl CloudError for ProviderError {
    fn is_retryable(&self) -> bool {
        // Quota frees up when other servers go; everything else in the spec needs a change.
        matches!(self, ProviderError::QuotaExceeded(_)) || matches!(self, ProviderError::Hcs(e) if e.is_retryable())
    }
    fn is_not_found(&self) -> bool {
        matches!(self, ProviderError::Hcs(e) if e.is_not_found())
    }
    fn reason(&self) -> &'static str {
        match self {
            ProviderError::Credentials(_) => "InvalidCredentials",
            ProviderError::Spec(_) => "InvalidSpec",
            ProviderError::ImageNotFound(_) => "ImageNotFound",
            ProviderError::FlavorNotFound(..) => "FlavorNotFound",
            ProviderError::SubnetNotFound(_) => "SubnetNotFound",
            ProviderError::UserDataTooLarge(_) => "BootstrapDataTooLarge",
            ProviderError::QuotaExceeded(_) => "QuotaExceeded",
            ProviderError::LoadBalancer(_) => "LoadBalancerFailed",
            ProviderError::TooManyAttempts(_) => "InstanceProvisioningFailed",
            ProviderError::Hcs(HcsError::Auth { .. }) => "AuthenticationFailed",
            ProviderError::Hcs(HcsError::Throttled { .. }) => "Throttled",
            ProviderError::Hcs(e) if e.is_retryable() => "CloudUnavailable",
            ProviderError::Hcs(_) => "CloudAPIError",
        }
    }
}

pub struct HcsProvider {
    pool: HcsClientPool,
}

impl HcsProvider {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            pool: HcsClientPool::new(Arc::new(capstan_cloudkit::MetricsObserver::new("hcs", metrics))),
        }
    }

    /// The client pool, for idle eviction.
    pub fn pool(&self) -> &HcsClientPool {
        &self.pool
    }

    fn client(&self, cluster: &HCSCluster, creds: &capstan_lifecycle::Credentials) -> Result<HcsClient, ProviderError> {
        Ok(self.pool.client(crate::settings::config(cluster, creds)?)?)
    }

    fn scope_client(&self, scope: &MachineScope<'_, Self>) -> Result<HcsClient, ProviderError> {
        self.client(scope.cluster, scope.credentials)
    }
}

/// The subnet a machine's NIC is on: its own, else the cluster's first.
fn machine_subnet<'a>(cluster: &'a HCSCluster, machine: &'a HCSMachine) -> Result<&'a str, ProviderError> {
    machine
        .spec
        .subnet
        .as_ref()
        .or(cluster.spec.network.subnets.first())
        .map(|s| s.id.as_str())
        .ok_or_else(|| ProviderError::Spec("the HCSCluster lists no subnet".into()))
}

async fn subnet(client: &HcsClient, id: &str) -> Result<Subnet, ProviderError> {
    client.get_subnet(id).await.map_err(|e| {
        if e.is_not_found() {
            ProviderError::SubnetNotFound(id.to_string())
        } else {
            e.into()
        }
    })
}

/// The server's state in the core's words.
fn instance(server: &Server) -> Instance {
    let state = match server.status.as_str() {
        "BUILD" | "REBUILD" => InstanceState::Creating,
        "ACTIVE" => InstanceState::Running,
        "SHUTOFF" => InstanceState::Stopped,
        "REBOOT" | "HARD_REBOOT" => InstanceState::Starting,
        "DELETED" | "SOFT_DELETED" => InstanceState::Deleting,
        "ERROR" => InstanceState::Failed("ECS reports the server in state ERROR".into()),
        other => InstanceState::Unknown(other.to_string()),
    };
    let address = |kind, a: &str| MachineAddress {
        type_: kind,
        address: a.to_string(),
    };
    let mut addresses: Vec<MachineAddress> = server
        .fixed_addresses()
        .map(|a| address(MachineAddressType::InternalIP, a))
        .collect();
    addresses.extend(
        server
            .floating_addresses()
            .map(|a| address(MachineAddressType::ExternalIP, a)),
    );
    Instance {
        id: server.id.clone(),
        provider_id: provider_id(&server.id),
        state,
        raw_state: server.status.clone(),
        addresses,
        failure_domain: server.availability_zone.clone(),
    }
}

/// The `X-Client-Token` of create attempt `n`: the UID first, then the UID with a counter, so
/// a retry after a failed create job is a new request while a repeat of the same attempt (a
/// crash before its status was written) is not.
fn client_token(uid: &str, attempt: u32) -> String {
    match attempt {
        0 => uid.to_string(),
        n => format!("{uid}-{n}"),
    }
}

impl HcsProvider {
    /// The ECS create body for this machine.
    async fn server_spec(
        &self,
        client: &HcsClient,
        scope: &MachineScope<'_, Self>,
        bootstrap: &BootstrapData,
    ) -> Result<CreateServer, ProviderError> {
        let spec = &scope.machine.spec;
        let cluster = scope.cluster;
        let user_data = user_data(bootstrap)?;
        let zone = spec.availability_zone.clone().or(scope.failure_domain.clone());
        let image = client
            .find_images(&spec.image_name)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::ImageNotFound(spec.image_name.clone()))?;
        let flavor = client
            .list_flavors(zone.as_deref())
            .await?
            .into_iter()
            .find(|f| f.name == spec.flavor_name || f.id == spec.flavor_name)
            .ok_or_else(|| {
                let zone = zone.as_deref().map(|z| format!(" in zone {z}")).unwrap_or_default();
                ProviderError::FlavorNotFound(spec.flavor_name.clone(), zone)
            })?;
        let subnet = subnet(client, machine_subnet(cluster, scope.machine)?).await?;
        let mut server_tags: Vec<Tag> = spec
            .tags
            .iter()
            .map(|(k, v)| Tag {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        let id = &scope.identity;
        for (key, value) in [
            (TAG_UID, &id.uid),
            (TAG_CLUSTER, &id.cluster_name),
            (TAG_NAMESPACE, &id.namespace),
        ] {
            server_tags.retain(|t| t.key != key);
            server_tags.push(Tag {
                key: key.into(),
                value: value.clone(),
            });
        }
        let volume = |v: &crate::api::VolumeSpec| Volume {
            volumetype: v.volume_type.clone(),
            size: v.size_gib,
        };
        Ok(CreateServer {
            name: id.name.clone(),
            image_ref: image.id,
            flavor_ref: flavor.id,
            vpcid: subnet.vpc_id.clone(),
            nics: vec![Nic {
                subnet_id: subnet.id,
                ip_address: None,
            }],
            root_volume: spec.root_volume.as_ref().map(volume).unwrap_or(Volume {
                volumetype: "SSD".into(),
                size: 40,
            }),
            data_volumes: spec.data_volumes.iter().map(volume).collect(),
            security_groups: cluster
                .spec
                .network
                .security_groups
                .iter()
                .chain(&spec.security_groups)
                .map(|g| IdRef { id: g.id.clone() })
                .collect(),
            availability_zone: zone,
            user_data: Some(base64::engine::general_purpose::STANDARD.encode(&user_data)),
            metadata: Default::default(),
            server_tags,
            scheduler_hints: spec
                .server_group_id
                .clone()
                .map(|group| crate::client::ecs::SchedulerHints { group }),
            count: 1,
            is_auto_rename: false,
            power_on: true,
        })
    }

    /// The cluster's pool and member subnet, when it has a managed load balancer.
    fn pool_of(cluster: &HCSCluster) -> Option<(String, String)> {
        let res = cluster.status.as_ref()?.resources.as_ref()?;
        Some((res.pool_id.clone()?, res.member_subnet_id.clone()?))
    }
}

impl InfraProvider for HcsProvider {
    type Cluster = HCSCluster;
    type Machine = HCSMachine;
    type ClusterResources = HCSClusterResources;
    type MachineResources = HCSMachineResources;
    type Error = ProviderError;

    fn name(&self) -> &'static str {
        "hcs"
    }

    async fn ensure_cluster_infra(
        &self,
        scope: &ClusterScope<'_, Self>,
        res: &mut HCSClusterResources,
    ) -> Result<ClusterProgress, ProviderError> {
        let cluster = scope.infra;
        let client = self.client(cluster, scope.credentials)?;
        // Reading the first subnet checks the credentials, the endpoint and the network at once.
        let first = cluster
            .spec
            .network
            .subnets
            .first()
            .ok_or_else(|| ProviderError::Spec("network.subnets is empty".into()))?;
        let subnet = subnet(&client, &first.id).await?;
        let failure_domains = cluster
            .spec
            .availability_zones
            .iter()
            .map(|z| FailureDomain {
                name: z.name.clone(),
                control_plane: Some(z.control_plane.unwrap_or(true)),
                attributes: None,
            })
            .collect();
        let endpoint = if cluster.spec.control_plane_load_balancer.is_some() {
            match loadbalancer::ensure(&client, cluster, &subnet, scope.api_server_port(), res).await? {
                loadbalancer::Progress::Ready(ep) => Some(ep),
                loadbalancer::Progress::Pending(message) => return Ok(ClusterProgress::Pending(message)),
            }
        } else {
            None
        };
        Ok(ClusterProgress::Ready(ClusterInfra {
            control_plane_endpoint: endpoint,
            failure_domains,
        }))
    }

    async fn delete_cluster_infra(
        &self,
        scope: &ClusterScope<'_, Self>,
        res: &mut HCSClusterResources,
    ) -> Result<Removal, ProviderError> {
        let cluster = scope.infra;
        if cluster.spec.control_plane_load_balancer.is_none() {
            return Ok(Removal::Done);
        }
        let client = self.client(cluster, scope.credentials)?;
        Ok(match loadbalancer::delete(&client, cluster, res).await? {
            true => Removal::Done,
            false => Removal::InProgress(format!("deleting load balancer {}", loadbalancer::name(cluster))),
        })
    }

    async fn find_instance(&self, scope: &MachineScope<'_, Self>) -> Result<Option<Instance>, ProviderError> {
        let client = self.scope_client(scope)?;
        let uid = scope.identity.uid.as_str();
        let adopted = |s: &Server| scope.machine.spec.provider_id.as_deref() == Some(provider_id(&s.id).as_str());
        let ours = |s: &Server| s.tag(TAG_UID) == Some(uid) || adopted(s);
        if let Some(id) = &scope.known_instance {
            match client.get_server(id).await {
                Ok(s) if ours(&s) && s.status != "DELETED" => return Ok(Some(instance(&s))),
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut found = client.find_servers_by_tag(TAG_UID, uid).await?;
        if found.len() > 1 {
            tracing::warn!(
                count = found.len(),
                "several servers carry this machine's UID; using the first"
            );
        }
        if let Some(s) = found.drain(..).next() {
            return Ok(Some(instance(&s)));
        }
        // A moved machine has a new UID; its providerID still names the server.
        if let Some(id) = scope
            .machine
            .spec
            .provider_id
            .as_deref()
            .and_then(|p| p.strip_prefix("hcs://"))
        {
            match client.get_server(id).await {
                Ok(s) if s.status != "DELETED" => return Ok(Some(instance(&s))),
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    async fn create_instance(
        &self,
        scope: &MachineScope<'_, Self>,
        bootstrap: &BootstrapData,
    ) -> Result<Operation, ProviderError> {
        let client = self.scope_client(scope)?;
        let server = self.server_spec(&client, scope, bootstrap).await?;
        // A token whose create job already failed is spent (ECS answers it with that job again):
        // move on to the next attempt's token.
        for attempt in 0..MAX_CREATE_ATTEMPTS {
            let token = client_token(&scope.identity.uid, attempt);
            let created = match client.create_server(&server, &token).await {
                Ok(c) => c,
                Err(e) if e.code().is_some_and(|c| TOKEN_REUSED.contains(&c)) => continue,
                Err(e) => return Err(ProviderError::classify(e)),
            };
            match client.get_job(&created.job_id).await?.state() {
                JobState::Failed(_) if attempt + 1 < MAX_CREATE_ATTEMPTS => continue,
                _ => return Ok(Operation { id: created.job_id }),
            }
        }
        Err(ProviderError::TooManyAttempts(MAX_CREATE_ATTEMPTS))
    }

    async fn start_instance(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: &Instance,
        _boot: Boot<'_>,
    ) -> Result<Option<Operation>, ProviderError> {
        // ECS keeps the user_data it was created with; a start is a start.
        let client = self.scope_client(scope)?;
        let job = client.server_action(&instance.id, PowerAction::Start).await?;
        Ok(Some(Operation { id: job }))
    }

    async fn poll_operation(
        &self,
        scope: &MachineScope<'_, Self>,
        operation: &PendingOperation,
    ) -> Result<OperationState, ProviderError> {
        let client = self.scope_client(scope)?;
        match client.get_job(&operation.id).await {
            Ok(job) => Ok(match job.state() {
                JobState::Running => OperationState::Running,
                JobState::Succeeded => OperationState::Succeeded,
                JobState::Failed(message) => OperationState::Failed { message },
            }),
            // Jobs are not kept for ever: the server itself says how it went.
            Err(e) if e.is_not_found() => Ok(OperationState::Succeeded),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_instance(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: &Instance,
    ) -> Result<Option<Operation>, ProviderError> {
        if instance.state == InstanceState::Deleting {
            return Ok(None);
        }
        let client = self.scope_client(scope)?;
        match client.delete_server(&instance.id).await {
            Ok(job) => Ok(Some(Operation { id: job })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn ensure_attachments(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: &Instance,
        res: &mut HCSMachineResources,
    ) -> Result<Attachment, ProviderError> {
        let Some((pool, member_subnet)) = Self::pool_of(scope.cluster).filter(|_| scope.control_plane) else {
            return Ok(Attachment::NotApplicable);
        };
        if res.load_balancer_member_id.is_some() {
            return Ok(Attachment::Attached);
        }
        let Some(address) = instance.addresses.first().map(|a| a.address.clone()) else {
            return Ok(Attachment::NotApplicable);
        };
        let port = member_port(scope.cluster);
        let client = self.scope_client(scope)?;
        // A crash after the member was added leaves it unrecorded: look before adding.
        let existing = client.members(&pool).await?;
        let id = match existing
            .into_iter()
            .find(|m| m.address == address && m.protocol_port == port)
        {
            Some(m) => m.id,
            None => client.add_member(&pool, &address, port, &member_subnet).await?.id,
        };
        res.load_balancer_member_id = Some(id);
        Ok(Attachment::Attached)
    }

    async fn release_attachments(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: Option<&Instance>,
        res: &mut HCSMachineResources,
    ) -> Result<Removal, ProviderError> {
        let Some((pool, _)) = Self::pool_of(scope.cluster) else {
            return Ok(Removal::Done);
        };
        let client = self.scope_client(scope)?;
        if let Some(id) = res.load_balancer_member_id.take() {
            client.remove_member(&pool, &id).await?;
            return Ok(Removal::Done);
        }
        // The record may be lost (a crash after the member was added): look by address.
        if scope.control_plane
            && let Some(instance) = instance
        {
            let port = member_port(scope.cluster);
            for m in client.members(&pool).await? {
                if m.protocol_port == port && instance.addresses.iter().any(|a| a.address == m.address) {
                    client.remove_member(&pool, &m.id).await?;
                }
            }
        }
        Ok(Removal::Done)
    }

    async fn clean_up_bootstrap(
        &self,
        _scope: &MachineScope<'_, Self>,
        _instance: &Instance,
    ) -> Result<Cleanup, ProviderError> {
        Ok(Cleanup::Impossible(
            "ECS keeps a server's user_data for its lifetime and offers no call to remove it; \
             the bootstrap token in it expires, the keys in a control-plane machine's data do not"
                .into(),
        ))
    }
}

/// The port members serve the API server on: the endpoint's (the guests' kube-apiserver binds
/// the port the endpoint names, as kubeadm's `bindPort` does by default).
fn member_port(cluster: &HCSCluster) -> u16 {
    cluster
        .spec
        .control_plane_endpoint
        .as_ref()
        .and_then(|e| u16::try_from(e.port?).ok())
        .unwrap_or(6443)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_per_attempt_and_repeat_within_one() {
        assert_eq!(client_token("u", 0), "u");
        assert_eq!(client_token("u", 2), "u-2");
        assert_eq!(client_token("u", 2), client_token("u", 2));
    }

    #[test]
    fn large_ignition_configs_become_a_replace_stub_and_nothing_is_truncated() {
        use base64::Engine;
        let filler = "x".repeat(40_000);
        let doc = format!(
            r#"{{"ignition":{{"version":"3.4.0"}},"storage":{{"files":[{{"path":"/big","contents":{{"source":"data:,{filler}"}}}}]}}}}"#
        );
        let ignition = |v: &str| BootstrapData {
            value: v.as_bytes().to_vec(),
            format: BootstrapFormat::Ignition,
        };
        let small = r#"{"ignition":{"version":"3.4.0"}}"#;
        assert_eq!(
            user_data(&ignition(small)).unwrap(),
            small.as_bytes(),
            "raw JSON, no gzip"
        );
        let stub: serde_json::Value = serde_json::from_slice(&user_data(&ignition(&doc)).unwrap()).unwrap();
        let replace = &stub["ignition"]["config"]["replace"];
        assert_eq!(replace["compression"], "gzip");
        let gz = base64::engine::general_purpose::STANDARD
            .decode(
                replace["source"]
                    .as_str()
                    .unwrap()
                    .strip_prefix("data:;base64,")
                    .unwrap(),
            )
            .unwrap();
        let mut full = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut full).unwrap();
        assert_eq!(full, doc);
        // 2.x has no replace-with-compression, and cloud-config has no stub at all.
        let v2 = doc.replace("3.4.0", "2.3.0");
        assert!(matches!(
            user_data(&ignition(&v2)),
            Err(ProviderError::UserDataTooLarge(_))
        ));
        let cloud = BootstrapData {
            value: filler.into_bytes(),
            format: BootstrapFormat::CloudConfig,
        };
        assert!(matches!(
            user_data(&cloud),
            Err(ProviderError::UserDataTooLarge(40_000))
        ));
    }

    #[test]
    fn too_large_bootstrap_data_is_a_terminal_condition_reason() {
        let e = ProviderError::UserDataTooLarge(40_000);
        assert_eq!(e.reason(), "BootstrapDataTooLarge");
        assert!(!e.is_retryable());
        assert!(
            e.to_string().contains("40000") && e.to_string().contains("32768"),
            "{e}"
        );
    }
}
