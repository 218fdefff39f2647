//! Capstan's in-tree IPAM provider for `DCSIPHostnamePool`: it answers the `IPAddressClaim`s that
//! name such a pool (the DCS provider's own, or anything else speaking the CAPI IPAM contract)
//! with `IPAddress` objects, one pool entry each.
//!
//! The `IPAddress` objects are the allocation: the pool's status only counts them, so a pool and
//! its addresses copied to another management cluster (`clusterctl move`, which never carries
//! status) hand out nothing twice. Each pool is reconciled as a whole, one pass at a time (the
//! controller never runs two passes for one pool), from live lists rather than the watch cache:
//! an address created by the previous pass is always seen by the next.

use std::sync::Arc;
use std::time::Duration;

use capstan_api::conditions::{self, NewCondition, Status};
use capstan_api::contract::LABEL_CLUSTER_NAME;
use capstan_api::core::{Cluster, ContractVersionedObjectReference};
use capstan_api::ipam::{CONDITION_READY, IPAddress, IPAddressClaim, IPAddressSpec, LocalRef};
use capstan_lifecycle::ipam::{ANNOTATION_DNS, ANNOTATION_HOSTNAME};
use capstan_runtime::ProviderContext;
use capstan_runtime::backoff::{FailureBackoff, ObjectKey};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info_span, warn};

use crate::api::{DCSIPHostnamePool, PoolEntry};

/// Held on every claim this provider serves until its address is deleted, so that deleting a
/// claim always frees its entry (no garbage collector needed).
pub const RELEASE_FINALIZER: &str = "ipam.capstan.dev/release-address";
const FIELD_MANAGER: &str = "capstan-dcs-ipam";
/// How often a pool is looked at without any change (claims of a paused cluster, for one).
const RESYNC: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("DCSIPHostnamePool {pool}: {source}")]
    Kube { pool: String, source: kube::Error },
}

struct State {
    client: Client,
    backoff: FailureBackoff,
}

/// Runs the pool controller until `ctx.shutdown` is cancelled.
pub async fn run(ctx: ProviderContext) {
    // Pools and claims carry no watch-filter label of their own: the namespace scopes them.
    let all = watcher::Config::default();
    let shutdown = ctx.shutdown.clone();
    let state = Arc::new(State {
        client: ctx.client.clone(),
        backoff: FailureBackoff::new(Duration::from_secs(1), Duration::from_secs(60)),
    });
    Controller::new(ctx.scope.api::<DCSIPHostnamePool>(ctx.client.clone()), all.clone())
        .with_config(ctx.concurrency.controller_config("dcsiphostnamepool"))
        .watches(ctx.scope.api::<IPAddressClaim>(ctx.client.clone()), all.clone(), |c| {
            pool_of(&c.spec.pool_ref, c.namespace())
        })
        .watches(ctx.scope.api::<IPAddress>(ctx.client.clone()), all, |a| {
            pool_of(&a.spec.pool_ref, a.namespace())
        })
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(
            |pool, state: Arc<State>| async move {
                let key = ObjectKey::of(pool.as_ref());
                let span = info_span!("reconcile", provider = "dcs", controller = "dcsiphostnamepool", object = %key);
                let result = reconcile(&pool, &state.client).instrument(span).await;
                if result.is_ok() {
                    state.backoff.reset(&key);
                }
                result
            },
            |pool, err: &PoolError, state| {
                let key = ObjectKey::of(pool.as_ref());
                let delay = state.backoff.next_delay(&key);
                warn!(object = %key, error = %err, retry_in = ?delay, "reconcile failed");
                Action::requeue(delay)
            },
            state,
        )
        .for_each(|_| async {})
        .await;
}

fn pool_of(r: &ContractVersionedObjectReference, ns: Option<String>) -> Option<ObjectRef<DCSIPHostnamePool>> {
    r.is_kind::<DCSIPHostnamePool>()
        .then(|| ObjectRef::new(&r.name).within(&ns.unwrap_or_default()))
}

fn reference(pool: &DCSIPHostnamePool) -> ContractVersionedObjectReference {
    ContractVersionedObjectReference::new(
        DCSIPHostnamePool::group(&()),
        DCSIPHostnamePool::kind(&()),
        pool.name_any(),
    )
}

/// One pass over a pool: release the addresses of deleted claims, bind every other claim, count.
async fn reconcile(pool: &DCSIPHostnamePool, client: &Client) -> Result<Action, PoolError> {
    let ns = pool.namespace().unwrap_or_default();
    let name = pool.name_any();
    let kube_err = |source| PoolError::Kube {
        pool: name.clone(),
        source,
    };
    let claims_api: Api<IPAddressClaim> = Api::namespaced(client.clone(), &ns);
    let addresses_api: Api<IPAddress> = Api::namespaced(client.clone(), &ns);
    let me = reference(pool);
    let claims: Vec<IPAddressClaim> = live(&claims_api, |c: &IPAddressClaim| c.spec.pool_ref == me)
        .await
        .map_err(kube_err)?;
    let mut addresses: Vec<IPAddress> = live(&addresses_api, |a: &IPAddress| a.spec.pool_ref == me)
        .await
        .map_err(kube_err)?;

    release_unclaimed(&addresses_api, &claims_api, &claims, &mut addresses)
        .await
        .map_err(kube_err)?;
    let mut live_claims: Vec<&IPAddressClaim> = claims
        .iter()
        .filter(|c| c.meta().deletion_timestamp.is_none())
        .collect();
    // Oldest claim first, so a freed entry goes to the machine that has waited longest.
    live_claims.sort_by_key(|c| (c.meta().creation_timestamp.clone().map(|t| t.0), c.name_any()));
    let paused = paused_clusters(client, &ns, &live_claims).await.map_err(kube_err)?;
    for claim in live_claims {
        if claim
            .labels()
            .get(LABEL_CLUSTER_NAME)
            .is_some_and(|c| paused.contains(c))
        {
            continue;
        }
        bind(pool, claim, &claims_api, &addresses_api, &mut addresses)
            .await
            .map_err(kube_err)?;
    }
    write_counts(pool, client, addresses.len()).await.map_err(kube_err)?;
    Ok(Action::requeue(RESYNC))
}

/// A consistent read (not the watch cache) of the namespace's `K`, filtered.
async fn live<K>(api: &Api<K>, keep: impl Fn(&K) -> bool) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|o| keep(o))
        .collect())
}

/// Deletes the address of every claim that is being deleted or gone, then lets the claim go.
async fn release_unclaimed(
    addresses_api: &Api<IPAddress>,
    claims_api: &Api<IPAddressClaim>,
    claims: &[IPAddressClaim],
    addresses: &mut Vec<IPAddress>,
) -> Result<(), kube::Error> {
    let alive = |a: &IPAddress| {
        claims
            .iter()
            .any(|c| c.name_any() == a.spec.claim_ref.name && c.meta().deletion_timestamp.is_none())
    };
    for a in addresses.iter().filter(|a| !alive(a)) {
        match addresses_api.delete(&a.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    addresses.retain(alive);
    for c in claims.iter().filter(|c| c.meta().deletion_timestamp.is_some()) {
        capstan_runtime::finalizer::remove(claims_api, c, RELEASE_FINALIZER, FIELD_MANAGER).await?;
    }
    Ok(())
}

/// The clusters among the claims' `cluster-name` labels that are paused (a `clusterctl move`
/// in progress): their claims wait.
async fn paused_clusters(
    client: &Client,
    ns: &str,
    claims: &[&IPAddressClaim],
) -> Result<std::collections::BTreeSet<String>, kube::Error> {
    let names: std::collections::BTreeSet<&String> = claims
        .iter()
        .filter_map(|c| c.labels().get(LABEL_CLUSTER_NAME))
        .collect();
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), ns);
    let mut paused = std::collections::BTreeSet::new();
    for name in names {
        if clusters.get_opt(name).await?.is_some_and(|c| c.is_paused()) {
            paused.insert(name.clone());
        }
    }
    Ok(paused)
}

/// Gives `claim` an address (the one bound to it already, or the first free entry) and points
/// its status at it; an exhausted pool is said on the claim.
async fn bind(
    pool: &DCSIPHostnamePool,
    claim: &IPAddressClaim,
    claims_api: &Api<IPAddressClaim>,
    addresses_api: &Api<IPAddress>,
    addresses: &mut Vec<IPAddress>,
) -> Result<(), kube::Error> {
    capstan_runtime::finalizer::add(claims_api, claim, RELEASE_FINALIZER, FIELD_MANAGER).await?;
    let claim_name = claim.name_any();
    let bound = match addresses.iter().find(|a| a.spec.claim_ref.name == claim_name) {
        Some(a) => Some(a.name_any()),
        None => match free_entry(pool, addresses) {
            Some(entry) => {
                let address = new_address(pool, claim, entry);
                let created = match addresses_api.create(&PostParams::default(), &address).await {
                    Ok(a) => a,
                    // Ours from a pass whose list missed it cannot be: lists are consistent. An
                    // address of that name bound elsewhere is reported on the claim.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        let message = format!("an IPAddress named {claim_name} already exists for another pool");
                        return set_ready(claims_api, claim, None, "AddressNameTaken", &message).await;
                    }
                    Err(e) => return Err(e),
                };
                addresses.push(created);
                Some(claim_name.clone())
            }
            None => None,
        },
    };
    match bound {
        Some(address) => {
            let message = format!("bound to IPAddress {address}");
            set_ready(claims_api, claim, Some(address), "Allocated", &message).await
        }
        None => {
            let message = format!(
                "DCSIPHostnamePool {} has no free entry ({} of {} allocated)",
                pool.name_any(),
                addresses.len(),
                pool.spec.entries.len()
            );
            set_ready(claims_api, claim, None, "PoolExhausted", &message).await
        }
    }
}

fn free_entry<'a>(pool: &'a DCSIPHostnamePool, addresses: &[IPAddress]) -> Option<&'a PoolEntry> {
    pool.spec
        .entries
        .iter()
        .find(|e| !addresses.iter().any(|a| a.spec.address == e.address.address))
}

fn new_address(pool: &DCSIPHostnamePool, claim: &IPAddressClaim, entry: &PoolEntry) -> IPAddress {
    let mut a = IPAddress::new(
        &claim.name_any(),
        IPAddressSpec {
            claim_ref: LocalRef { name: claim.name_any() },
            pool_ref: reference(pool),
            address: entry.address.address.clone(),
            prefix: i32::from(entry.address.prefix_length),
            gateway: entry.address.gateway.clone(),
            unknown: Default::default(),
        },
    );
    let meta = &mut a.metadata;
    meta.namespace = pool.namespace();
    meta.labels = claim
        .labels()
        .get(LABEL_CLUSTER_NAME)
        .map(|c| [(LABEL_CLUSTER_NAME.to_string(), c.clone())].into());
    let mut annotations = std::collections::BTreeMap::new();
    if let Some(h) = &entry.hostname {
        annotations.insert(ANNOTATION_HOSTNAME.to_string(), h.clone());
    }
    if let Some(dns) = entry.address.dns.as_ref().filter(|d| !d.is_empty()) {
        annotations.insert(ANNOTATION_DNS.to_string(), dns.join(","));
    }
    meta.annotations = (!annotations.is_empty()).then_some(annotations);
    // Owned by the claim (deleted with it) and the pool, as upstream's in-cluster provider does.
    meta.owner_references = Some(
        [
            capstan_api::owner::owner_reference(claim, true),
            capstan_api::owner::owner_reference(pool, false),
        ]
        .into_iter()
        .flatten()
        .collect(),
    );
    a
}

/// Sets the claim's `addressRef` and `Ready` condition, writing only when they change.
async fn set_ready(
    claims_api: &Api<IPAddressClaim>,
    claim: &IPAddressClaim,
    address: Option<String>,
    reason: &str,
    message: &str,
) -> Result<(), kube::Error> {
    let mut status = claim.status.clone().unwrap_or_default();
    let address_ref = address.map(|name| LocalRef { name });
    let ref_changed = status.address_ref != address_ref && address_ref.is_some();
    if address_ref.is_some() {
        status.address_ref = address_ref;
    }
    let condition = if status.address_ref.is_some() {
        NewCondition::new(CONDITION_READY, Status::True, reason, message)
    } else {
        NewCondition::falsy(CONDITION_READY, reason, message)
    };
    let cond_changed = conditions::set(&mut status.conditions, condition, claim.meta().generation);
    if !ref_changed && !cond_changed {
        return Ok(());
    }
    let patch = json!({"status": {"addressRef": status.address_ref, "conditions": status.conditions}});
    claims_api
        .patch_status(&claim.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// The pool's status: how many entries are handed out and how many are left (information only;
/// the `IPAddress` objects are the allocation).
async fn write_counts(pool: &DCSIPHostnamePool, client: &Client, allocated: usize) -> Result<(), kube::Error> {
    let free = pool.spec.entries.len().saturating_sub(allocated);
    let status = pool.status.clone().unwrap_or_default();
    if status.allocated_count == Some(allocated as i32) && status.free_count == Some(free as i32) {
        return Ok(());
    }
    let pools: Api<DCSIPHostnamePool> = Api::namespaced(client.clone(), &pool.namespace().unwrap_or_default());
    let patch = json!({"status": {"allocatedCount": allocated, "freeCount": free}});
    pools
        .patch_status(&pool.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}
