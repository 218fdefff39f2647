//! The consumer side of the Cluster API IPAM contract, for every provider that hands machines
//! static addresses: one `IPAddressClaim` per addressed NIC, owned by the InfraMachine, answered
//! by whichever IPAM provider serves the pool kind it names (Capstan's own pools or an upstream
//! one such as the in-cluster provider). The claim and its `IPAddress` are objects, so the
//! allocation moves with the cluster; nothing about it lives in status.

use std::net::IpAddr;

use capstan_api::contract::LABEL_CLUSTER_NAME;
use capstan_api::core::ContractVersionedObjectReference;
use capstan_api::ipam::{CONDITION_READY, IPAddress, IPAddressClaim, IPAddressClaimSpec};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Resource, ResourceExt};

/// Keeps a claim (and so its address) while the machine that uses it still exists: a claim
/// deleted by hand must not free an address a running VM holds.
pub const CLAIM_FINALIZER: &str = "ipam.capstan.dev/ip-claim-protection";
/// An `IPAddress` annotation Capstan's own pools set: the hostname that goes with the address.
pub const ANNOTATION_HOSTNAME: &str = "ipam.capstan.dev/hostname";
/// An `IPAddress` annotation Capstan's own pools set: DNS servers, comma-separated.
pub const ANNOTATION_DNS: &str = "ipam.capstan.dev/dns-servers";

/// An address a claim was given, with what Capstan's pools add to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedAddress {
    pub address: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    pub dns: Vec<IpAddr>,
    pub hostname: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("waiting for IPAddressClaim {claim} to get an address from {pool_kind} {pool}{detail}")]
    Waiting {
        claim: String,
        pool_kind: String,
        pool: String,
        /// What the IPAM provider said on the claim, if anything.
        detail: String,
    },
    #[error(
        "IPAddressClaim {claim} names {found}, the machine asks for {wanted}: delete the machine to change its pool"
    )]
    PoolChanged {
        claim: String,
        found: String,
        wanted: String,
    },
    #[error("IPAddress {address} of IPAddressClaim {claim} is unusable: {message}")]
    Invalid {
        claim: String,
        address: String,
        message: String,
    },
    #[error("IPAddressClaim {claim}: {source}")]
    Kube { claim: String, source: kube::Error },
}

impl IpamError {
    /// The condition reason a machine shows while this stands.
    pub fn reason(&self) -> &'static str {
        match self {
            IpamError::Waiting { .. } => "WaitingForIPAllocation",
            IpamError::PoolChanged { .. } => "IPAddressClaimPoolChanged",
            IpamError::Invalid { .. } => "InvalidIPAddress",
            IpamError::Kube { .. } => "IPAddressClaimFailed",
        }
    }
}

/// The claim of `owner`'s NIC `index` (CAPV names them the same way).
pub fn claim_name(owner: &str, index: usize) -> String {
    format!("{owner}-{index}")
}

/// The address `owner`'s NIC `index` holds from `pool`: creates the claim on first use, then
/// waits (`IpamError::Waiting`) until the pool's IPAM provider binds it.
pub async fn claim<K>(
    kube: &Client,
    owner: &K,
    cluster_name: &str,
    index: usize,
    pool: &ContractVersionedObjectReference,
) -> Result<ClaimedAddress, IpamError>
where
    K: Resource<DynamicType = ()>,
{
    let ns = owner.namespace().unwrap_or_default();
    let name = claim_name(&owner.name_any(), index);
    let kube_err = |source| IpamError::Kube {
        claim: name.clone(),
        source,
    };
    let claims: Api<IPAddressClaim> = Api::namespaced(kube.clone(), &ns);
    let waiting = |detail: String| IpamError::Waiting {
        claim: name.clone(),
        pool_kind: pool.kind.clone(),
        pool: pool.name.clone(),
        detail,
    };
    let Some(existing) = claims.get_opt(&name).await.map_err(kube_err)? else {
        let claim = new_claim(owner, &name, cluster_name, pool);
        match claims.create(&PostParams::default(), &claim).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(kube_err(e)),
        }
        return Err(waiting(String::new()));
    };
    if &existing.spec.pool_ref != pool {
        return Err(IpamError::PoolChanged {
            claim: name.clone(),
            found: format!("{} {}", existing.spec.pool_ref.kind, existing.spec.pool_ref.name),
            wanted: format!("{} {}", pool.kind, pool.name),
        });
    }
    let status = existing.status.unwrap_or_default();
    let Some(address_ref) = status.address_ref else {
        let said = capstan_api::conditions::get(&status.conditions, CONDITION_READY)
            .filter(|c| c.status == "False")
            .map(|c| format!(": {} ({})", c.message, c.reason))
            .unwrap_or_default();
        return Err(waiting(said));
    };
    let addresses: Api<IPAddress> = Api::namespaced(kube.clone(), &ns);
    let Some(address) = addresses.get_opt(&address_ref.name).await.map_err(kube_err)? else {
        return Err(waiting(format!(
            ": its IPAddress {} does not exist (yet)",
            address_ref.name
        )));
    };
    parse(&name, &address)
}

fn new_claim<K: Resource<DynamicType = ()>>(
    owner: &K,
    name: &str,
    cluster_name: &str,
    pool: &ContractVersionedObjectReference,
) -> IPAddressClaim {
    let mut claim = IPAddressClaim::new(
        name,
        IPAddressClaimSpec {
            cluster_name: Some(cluster_name.to_string()),
            pool_ref: pool.clone(),
            unknown: Default::default(),
        },
    );
    let meta = &mut claim.metadata;
    meta.namespace = owner.namespace();
    // The cluster-name label lets IPAM providers honour the cluster's pause, as upstream's do.
    meta.labels = Some([(LABEL_CLUSTER_NAME.to_string(), cluster_name.to_string())].into());
    meta.finalizers = Some(vec![CLAIM_FINALIZER.to_string()]);
    meta.owner_references = capstan_api::owner::owner_reference(owner, true).map(|o| vec![o]);
    claim
}

/// Turns the bound `IPAddress` into what a NIC needs, refusing one bound to another claim.
fn parse(claim: &str, a: &IPAddress) -> Result<ClaimedAddress, IpamError> {
    let invalid = |message: String| IpamError::Invalid {
        claim: claim.to_string(),
        address: a.name_any(),
        message,
    };
    if a.spec.claim_ref.name != claim {
        return Err(invalid(format!("it is bound to claim {}", a.spec.claim_ref.name)));
    }
    let ip = |what: &str, s: &str| {
        s.parse::<IpAddr>()
            .map_err(|_| invalid(format!("{what} {s:?} is not an IP address")))
    };
    let address = ip("address", &a.spec.address)?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = u8::try_from(a.spec.prefix)
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| invalid(format!("prefix {} is out of range", a.spec.prefix)))?;
    let gateway = a.spec.gateway.as_deref().map(|g| ip("gateway", g)).transpose()?;
    let annotations = a.annotations();
    let dns = annotations
        .get(ANNOTATION_DNS)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| ip("DNS server", s))
                .collect()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(ClaimedAddress {
        address,
        prefix,
        gateway,
        dns,
        hostname: annotations.get(ANNOTATION_HOSTNAME).cloned(),
    })
}

/// Gives back every address `owner` claimed, once its instance is gone: drops the protection
/// finalizer and deletes the claims (their IPAM provider then frees the addresses).
pub async fn release<K>(kube: &Client, owner: &K, field_manager: &str) -> Result<(), IpamError>
where
    K: Resource<DynamicType = ()>,
{
    let ns = owner.namespace().unwrap_or_default();
    let claims: Api<IPAddressClaim> = Api::namespaced(kube.clone(), &ns);
    let uid = owner.uid();
    let owned = claims
        .list(&ListParams::default())
        .await
        .map_err(|source| IpamError::Kube {
            claim: format!("{}-*", owner.name_any()),
            source,
        })?
        .items
        .into_iter()
        .filter(|c| c.owner_references().iter().any(|o| Some(&o.uid) == uid.as_ref()));
    for claim in owned {
        let name = claim.name_any();
        let kube_err = |source| IpamError::Kube {
            claim: name.clone(),
            source,
        };
        capstan_runtime::finalizer::remove(&claims, &claim, CLAIM_FINALIZER, field_manager)
            .await
            .map_err(kube_err)?;
        match claims.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(kube_err(e)),
        }
    }
    Ok(())
}
