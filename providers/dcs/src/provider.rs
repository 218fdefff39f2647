//! The DCS implementation of the lifecycle core's [`InfraProvider`]: VMs cloned from a template,
//! stamped with the DCSMachine's UID as `externalUuid`, booted with a NoCloud ISO.

use std::net::Ipv4Addr;
use std::sync::Arc;

use capstan_api::core::{MachineAddress, MachineAddressType};
use capstan_lifecycle::ipam::{self, ClaimedAddress};
use capstan_lifecycle::status::PendingOperation;
use capstan_lifecycle::{
    Boot, BootstrapData, Cleanup, CloudError, ClusterInfra, ClusterProgress, ClusterScope, Credentials, InfraProvider,
    Instance, InstanceState, MachineScope, NoResources, Operation, OperationState, Removal,
};
use capstan_runtime::metrics::Metrics;

use crate::api::{DCSCluster, DCSMachine, PasswordEncodingSpec};
use crate::client::{
    CloneSpec, DcsClient, DcsClientPool, DcsConfig, DcsError, DiskSpec, NicSpec, PasswordEncoding, StaticIpv4,
    StopMode, TaskStatus, UserType, Vm, VmState,
};

/// Whether `vm` is the one the machine's `spec.providerID` names (set by Capstan once the VM
/// existed, and carried by `clusterctl move` when the machine's UID is not).
fn adopted(machine: &DCSMachine, vm: &Vm) -> bool {
    machine.spec.provider_id.as_deref() == Some(provider_id(vm).as_str())
}

const IPAM_FIELD_MANAGER: &str = "capstan-dcs";

/// A pool address as the DCS NIC takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Lease {
    address: StaticIpv4,
    hostname: Option<String>,
}

impl Lease {
    fn from(c: ClaimedAddress) -> Result<Self, ProviderError> {
        let std::net::IpAddr::V4(address) = c.address else {
            return Err(ProviderError::Spec(format!(
                "the IP pool gave {}, an IPv6 address; DCS NICs take IPv4 only",
                c.address
            )));
        };
        let v4 = |ip: std::net::IpAddr| match ip {
            std::net::IpAddr::V4(v4) => Ok(v4),
            std::net::IpAddr::V6(v6) => Err(ProviderError::Spec(format!(
                "the IP pool gave an IPv6 gateway or DNS server {v6}"
            ))),
        };
        Ok(Lease {
            address: StaticIpv4 {
                address,
                prefix_len: c.prefix,
                gateway: c.gateway.map(v4).transpose()?,
                dns: c.dns.into_iter().map(v4).collect::<Result<_, _>>()?,
            },
            hostname: c.hostname,
        })
    }
}

/// The `dcs://` providerID of a VM: its UUID, which is what the DCS cloud-controller-manager writes
/// on the Node.
pub fn provider_id(vm: &Vm) -> String {
    format!("dcs://{}", vm.uuid)
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("invalid credentials secret: {0}")]
    Credentials(String),
    #[error("invalid machine spec: {0}")]
    Spec(String),
    #[error("VM template {0:?} not found")]
    TemplateNotFound(String),
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    #[error("the bootstrap data cannot be delivered on DCS: {0}")]
    UndeliverableBootstrap(#[from] capstan_lifecycle::ignition::IgnitionError),
    #[error("the VM is {0}; waiting for its current task to finish")]
    Busy(String),
    #[error(transparent)]
    Dcs(#[from] DcsError),
    #[error(transparent)]
    Ipam(#[from] ipam::IpamError),
}

impl From<capstan_lifecycle::credentials::CredentialsError> for ProviderError {
    fn from(e: capstan_lifecycle::credentials::CredentialsError) -> Self {
        ProviderError::Credentials(e.to_string())
    }
}

impl CloudError for ProviderError {
    fn is_retryable(&self) -> bool {
        // IPAM problems clear up without a spec change (a pool created or freed, a conflict).
        matches!(self, ProviderError::Busy(_) | ProviderError::Ipam(_))
            || matches!(self, ProviderError::Dcs(e) if e.is_retryable())
    }
    fn is_not_found(&self) -> bool {
        matches!(self, ProviderError::Dcs(e) if e.is_not_found()) || matches!(self, ProviderError::TemplateNotFound(_))
    }
    fn reason(&self) -> &'static str {
        match self {
            ProviderError::Credentials(_) => "InvalidCredentials",
            ProviderError::Spec(_) => "InvalidSpec",
            ProviderError::TemplateNotFound(_) => "TemplateNotFound",
            ProviderError::Volume(_) => "BootstrapVolumeFailed",
            ProviderError::UndeliverableBootstrap(_) => "UnsupportedBootstrapFormat",
            ProviderError::Busy(_) => "InstanceBusy",
            ProviderError::Ipam(e) => e.reason(),
            ProviderError::Dcs(DcsError::Auth { .. }) => "AuthenticationFailed",
            ProviderError::Dcs(DcsError::Forbidden { .. }) => "PermissionDenied",
            ProviderError::Dcs(DcsError::UntrustedUploadTarget { .. }) => "UploadTargetRejected",
            ProviderError::Dcs(e) if e.is_retryable() => "CloudUnavailable",
            ProviderError::Dcs(_) => "CloudAPIError",
        }
    }
}

pub struct DcsProvider {
    pool: DcsClientPool,
    /// For `DCSIPHostnamePool` allocations.
    kube: kube::Client,
}

impl DcsProvider {
    pub fn new(kube: kube::Client, metrics: Arc<Metrics>) -> Self {
        Self {
            pool: DcsClientPool::new(Arc::new(capstan_cloudkit::MetricsObserver::new("dcs", metrics))),
            kube,
        }
    }

    /// The address the machine's first NIC holds from its IP pool (claimed on first use), when
    /// it addresses from a pool.
    async fn pool_lease(&self, scope: &MachineScope<'_, Self>) -> Result<Option<Lease>, ProviderError> {
        let spec = &scope.machine.spec;
        let Some(r) = &spec.ip_hostname_pool_ref else {
            return Ok(None);
        };
        if spec.nics.first().and_then(|n| n.ipv4.as_ref()).is_some() {
            return Err(ProviderError::Spec(
                "set either nics[0].ipv4 or ipHostnamePoolRef, not both".into(),
            ));
        }
        let claimed = ipam::claim(
            &self.kube,
            scope.machine,
            &scope.identity.cluster_name,
            0,
            &r.to_claim_ref(),
        )
        .await?;
        Ok(Some(Lease::from(claimed)?))
    }

    fn client(&self, cluster: &DCSCluster, creds: &Credentials) -> Result<DcsClient, ProviderError> {
        let secret = creds.secret();
        let need = |k: &str| creds.require(k).map_err(ProviderError::from);
        let endpoint = need("endpoint")?;
        // Values of the Secret are never echoed (conditions are readable by anyone who can read
        // the DCSCluster): the messages name the key and what is wrong with it.
        let endpoint = reqwest::Url::parse(endpoint)
            .map_err(|e| ProviderError::Credentials(format!("key endpoint of Secret {secret} is not a URL ({e})")))?;
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err(ProviderError::Credentials(format!(
                "key endpoint of Secret {secret} carries credentials (user:password@): put them in authUser and authKey"
            )));
        }
        let mut config = DcsConfig::new(endpoint, need("authUser")?, need("authKey")?.to_string());
        if let Some(t) = creds.get("userType") {
            config.user_type = UserType::parse(t).ok_or_else(|| {
                ProviderError::Credentials(format!(
                    "key userType of Secret {secret} is neither interconnect nor domain"
                ))
            })?;
        }
        config.site = cluster
            .spec
            .site
            .clone()
            .or_else(|| creds.get("site").map(str::to_string));
        if let Some(tls) = &cluster.spec.tls {
            config.ca_bundle_pem = tls.ca_bundle.as_ref().map(|p| p.as_bytes().to_vec());
            config.insecure_skip_verify = tls.insecure_skip_verify.unwrap_or(false);
        }
        config.password_encoding = match cluster.spec.password_encoding {
            Some(PasswordEncodingSpec::Sha256Hex) => PasswordEncoding::Sha256Hex,
            _ => PasswordEncoding::Plain,
        };
        Ok(self.pool.client(config)?)
    }
}

/// The name of the machine's bootstrap image in VRM storage.
fn iso_name(scope: &MachineScope<'_, DcsProvider>) -> String {
    format!("capstan-{}.iso", scope.identity.uid)
}

fn instance(vm: &Vm) -> Instance {
    let state = match vm.state() {
        VmState::Creating => InstanceState::Creating,
        VmState::Stopped => InstanceState::Stopped,
        VmState::Starting => InstanceState::Starting,
        VmState::Running => InstanceState::Running,
        VmState::Stopping => InstanceState::Stopping,
        VmState::Other(s) if s == "fault-resuming" || s == "unknown" => InstanceState::Failed(format!("VM state {s}")),
        VmState::Other(s) => InstanceState::Unknown(s),
    };
    let mut addresses: Vec<MachineAddress> = vm
        .ipv4_addresses()
        .into_iter()
        .map(|ip| MachineAddress {
            type_: MachineAddressType::InternalIP,
            address: ip.to_string(),
        })
        .collect();
    if !addresses.is_empty() {
        addresses.push(MachineAddress {
            type_: MachineAddressType::Hostname,
            address: vm.name.clone(),
        });
    }
    Instance {
        id: vm.urn.clone(),
        provider_id: provider_id(vm),
        state,
        raw_state: vm.status.clone(),
        addresses,
        failure_domain: None,
    }
}

fn task_id(task_uri: &str, task_urn: &str) -> String {
    if task_uri.is_empty() {
        task_urn.to_string()
    } else {
        task_uri.to_string()
    }
}

fn parse_ip(s: &str, what: &str) -> Result<Ipv4Addr, ProviderError> {
    s.parse()
        .map_err(|_| ProviderError::Spec(format!("{what} {s:?} is not an IPv4 address")))
}

fn static_ipv4(addr: &crate::api::StaticAddress) -> Result<StaticIpv4, ProviderError> {
    Ok(StaticIpv4 {
        address: parse_ip(&addr.address, "address")?,
        prefix_len: addr.prefix_length,
        gateway: addr.gateway.as_deref().map(|g| parse_ip(g, "gateway")).transpose()?,
        dns: addr
            .dns
            .iter()
            .flatten()
            .map(|d| parse_ip(d, "dns"))
            .collect::<Result<_, _>>()?,
    })
}

impl InfraProvider for DcsProvider {
    type Cluster = DCSCluster;
    type Machine = DCSMachine;
    type ClusterResources = NoResources;
    type MachineResources = NoResources;
    type Error = ProviderError;

    fn name(&self) -> &'static str {
        "dcs"
    }

    async fn ensure_cluster_infra(
        &self,
        scope: &ClusterScope<'_, Self>,
        _resources: &mut NoResources,
    ) -> Result<ClusterProgress, ProviderError> {
        // DCS has no load balancer: the endpoint is the user's. Being provisioned means the VRM
        // answers with these credentials and the site exists.
        let client = self.client(scope.infra, scope.credentials)?;
        client.site().await?;
        Ok(ClusterProgress::Ready(ClusterInfra::default()))
    }

    async fn delete_cluster_infra(
        &self,
        _scope: &ClusterScope<'_, Self>,
        _resources: &mut NoResources,
    ) -> Result<Removal, ProviderError> {
        // Nothing cluster-level is created on DCS.
        Ok(Removal::Done)
    }

    async fn find_instance(&self, scope: &MachineScope<'_, Self>) -> Result<Option<Instance>, ProviderError> {
        let client = self.client(scope.cluster, scope.credentials)?;
        // A VM seen before is fetched directly (no search of the site on every pass), and only
        // trusted while it still carries our identity.
        let ours = |vm: &Vm| vm.external_uuid() == Some(scope.identity.uid.as_str()) || adopted(scope.machine, vm);
        if let Some(id) = &scope.known_instance {
            match client.get_vm(id).await {
                Ok(vm) if ours(&vm) => return Ok(Some(instance(&vm))),
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        // The identity stamped at clone time; the name alone could belong to someone else's VM.
        if let Some(vm) = client.find_vm_by_external_uuid(&scope.identity.uid).await? {
            return Ok(Some(instance(&vm)));
        }
        // A moved cluster: `clusterctl move` recreates the DCSMachine, so its UID (the stamped
        // identity) changed; the spec's providerID, written once the VM existed, did not.
        if scope.machine.spec.provider_id.is_some()
            && let Some(vm) = client.find_vm_by_name(&scope.identity.name).await?
            && adopted(scope.machine, &vm)
        {
            return Ok(Some(instance(&vm)));
        }
        Ok(None)
    }

    async fn create_instance(
        &self,
        scope: &MachineScope<'_, Self>,
        bootstrap: &BootstrapData,
    ) -> Result<Operation, ProviderError> {
        crate::volume::check_deliverable(bootstrap)?;
        let client = self.client(scope.cluster, scope.credentials)?;
        let spec = &scope.machine.spec;
        let template = client.find_template(&spec.template).await.map_err(|e| {
            if e.is_not_found() {
                ProviderError::TemplateNotFound(spec.template.clone())
            } else {
                e.into()
            }
        })?;
        let lease = self.pool_lease(scope).await?;
        let mut clone = CloneSpec::new(&scope.identity.name);
        clone.description = format!(
            "Capstan machine {}/{} of cluster {}",
            scope.identity.namespace, scope.identity.name, scope.identity.cluster_name
        );
        clone.external_uuid = Some(scope.identity.uid.clone());
        clone.hostname = Some(
            lease
                .as_ref()
                .and_then(|l| l.hostname.clone())
                .unwrap_or_else(|| scope.identity.name.clone()),
        );
        clone.cpu = Some(spec.cpu as u32);
        clone.memory_mib = Some(spec.memory_mib as u64);
        // The ISO has to be attached before the first boot, so never auto-boot.
        clone.auto_boot = false;
        match spec
            .placement
            .as_ref()
            .map(|p| (p.cluster.as_deref(), p.host.as_deref()))
        {
            Some((Some(_), Some(_))) => {
                return Err(ProviderError::Spec(
                    "placement names both a cluster and a host; set one".into(),
                ));
            }
            Some((Some(cluster), None)) => clone.location = Some(client.find_cluster(cluster).await?.urn),
            Some((None, Some(host))) => clone.location = Some(client.find_host(host).await?.urn),
            _ => {}
        }
        clone.disks.push(DiskSpec {
            sequence_num: 1,
            size_gb: spec.system_disk_gib.unwrap_or(0) as u64,
            datastore_urn: None,
            thin: true,
        });
        for (i, d) in spec.data_disks.iter().flatten().enumerate() {
            clone.disks.push(DiskSpec {
                sequence_num: i as u32 + 2,
                size_gb: d.size_gib as u64,
                datastore_urn: Some(client.find_datastore(&d.datastore).await?.urn),
                thin: true,
            });
        }
        for (i, nic) in spec.nics.iter().enumerate() {
            let pg = client.find_port_group(&nic.dv_switch, &nic.port_group).await?;
            let ipv4 = match (i, &lease) {
                (0, Some(l)) => Some(l.address.clone()),
                _ => nic.ipv4.as_ref().map(static_ipv4).transpose()?,
            };
            clone.nics.push(NicSpec {
                port_group_urn: pg.urn,
                ipv4,
            });
        }
        let result = client.clone_vm(&template, &clone).await?;
        Ok(Operation {
            id: task_id(&result.task_uri, &result.task_urn),
        })
    }

    async fn start_instance(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: &Instance,
        boot: Boot<'_>,
    ) -> Result<Option<Operation>, ProviderError> {
        let client = self.client(scope.cluster, scope.credentials)?;
        let vm = client.get_vm(&instance.id).await?;
        // A later start (stopped by hand, host failure) boots without the bootstrap volume: its
        // join secrets were taken away after the first boot and stay away.
        if let Boot::First(bootstrap) = boot
            && !vm.cdrom_loaded()
        {
            // First the bootstrap volume, then (next pass) the power-on.
            let lease = self.pool_lease(scope).await?;
            let first_nic = match &lease {
                Some(l) => Some(l.address.clone()),
                None => scope
                    .machine
                    .spec
                    .nics
                    .first()
                    .and_then(|n| n.ipv4.as_ref())
                    .map(static_ipv4)
                    .transpose()?,
            };
            let hostname = lease
                .and_then(|l| l.hostname)
                .unwrap_or_else(|| scope.identity.name.clone());
            let input = crate::volume::VolumeInput {
                instance_id: &scope.identity.uid,
                hostname: &hostname,
                provider_id: &provider_id(&vm),
                address: first_nic.as_ref(),
                ignition: scope.machine.spec.ignition.as_ref(),
            };
            let iso = crate::volume::bootstrap_iso(&input, bootstrap)?;
            let uploaded = client.upload_iso(&instance.id, &iso_name(scope), iso).await?;
            let task = client.attach_cdrom(&instance.id, &uploaded.device_path).await?;
            return Ok(Some(Operation {
                id: task_id(&task.task_uri, &task.task_urn),
            }));
        }
        let task = client.start_vm(&instance.id).await?;
        Ok(Some(Operation {
            id: task_id(&task.task_uri, &task.task_urn),
        }))
    }

    async fn poll_operation(
        &self,
        scope: &MachineScope<'_, Self>,
        operation: &PendingOperation,
    ) -> Result<OperationState, ProviderError> {
        let client = self.client(scope.cluster, scope.credentials)?;
        let task = match client.get_task(&operation.id).await {
            Ok(t) => t,
            // VRM forgets finished tasks after a while; the instance's state decides then.
            Err(e) if e.is_not_found() => return Ok(OperationState::Succeeded),
            Err(e) => return Err(e.into()),
        };
        Ok(match task.status() {
            TaskStatus::Success => OperationState::Succeeded,
            TaskStatus::Failed => OperationState::Failed {
                message: task.failure_reason(),
            },
            _ => OperationState::Running,
        })
    }

    async fn delete_instance(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: &Instance,
    ) -> Result<Option<Operation>, ProviderError> {
        let client = self.client(scope.cluster, scope.credentials)?;
        if matches!(instance.state, InstanceState::Running | InstanceState::Starting) {
            // VRM deletes only stopped VMs; a forced stop is fine, the node is going away.
            let task = client.stop_vm(&instance.id, StopMode::Force).await?;
            return Ok(Some(Operation {
                id: task_id(&task.task_uri, &task.task_urn),
            }));
        }
        if matches!(
            instance.state,
            InstanceState::Creating | InstanceState::Stopping | InstanceState::Deleting
        ) {
            // A task is still working on it; the core comes back and asks again.
            return Err(ProviderError::Busy(instance.raw_state.clone()));
        }
        match client.delete_vm(&instance.id).await {
            Ok(task) => Ok(Some(Operation {
                id: task_id(&task.task_uri, &task.task_urn),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn after_deleted(&self, scope: &MachineScope<'_, Self>) -> Result<(), ProviderError> {
        // Claims of a machine whose pool reference was removed are given back too.
        ipam::release(&self.kube, scope.machine, IPAM_FIELD_MANAGER).await?;
        Ok(())
    }

    async fn clean_up_bootstrap(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: &Instance,
    ) -> Result<Cleanup, ProviderError> {
        // The bootstrap volume holds join secrets: detach it, then delete the uploaded image from
        // VRM storage. Each pass does what is left: detach only what is still attached (a real
        // VRM may refuse an empty drive), and removing an image that is gone is success.
        let client = self.client(scope.cluster, scope.credentials)?;
        if client.get_vm(&instance.id).await?.cdrom_loaded() {
            let task = client.detach_cdrom(&instance.id).await?;
            return Ok(Cleanup::Started(Operation {
                id: task_id(&task.task_uri, &task.task_urn),
            }));
        }
        client.remove_uploaded_iso(&instance.id, &iso_name(scope)).await?;
        Ok(Cleanup::Done)
    }
}
