//! Entries of a `DCSIPHostnamePool` handed to DCSMachines. An allocation is recorded in the pool's
//! status under the DCSMachine's UID before the VM is cloned, so a retry (or a restarted manager)
//! finds the same entry, and two machines never get the same one: every change is guarded by the
//! pool's resourceVersion.

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::{DCSIPHostnamePool, DCSMachine, PoolAllocation, StaticAddress};

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("DCSIPHostnamePool {0} does not exist")]
    NotFound(String),
    #[error("DCSIPHostnamePool {0} has no free entry left")]
    Exhausted(String),
    #[error("the entry {address} of DCSIPHostnamePool {pool} held by this machine was removed from the pool")]
    EntryRemoved { pool: String, address: String },
    #[error("DCSIPHostnamePool {0} changed while allocating; retrying")]
    Conflict(String),
    #[error("DCSIPHostnamePool {pool}: {source}")]
    Kube { pool: String, source: kube::Error },
}

impl PoolError {
    pub fn reason(&self) -> &'static str {
        match self {
            PoolError::NotFound(_) => "IPPoolNotFound",
            PoolError::Exhausted(_) => "IPPoolExhausted",
            PoolError::EntryRemoved { .. } => "IPPoolEntryRemoved",
            PoolError::Conflict(_) | PoolError::Kube { .. } => "IPPoolUpdateFailed",
        }
    }
}

/// The entry a machine holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub address: StaticAddress,
    pub hostname: Option<String>,
}

fn api(client: &Client, machine: &DCSMachine) -> Api<DCSIPHostnamePool> {
    Api::namespaced(client.clone(), &machine.namespace().unwrap_or_default())
}

/// The machine's entry of `pool`, allocating the first free one when it holds none yet.
pub async fn acquire(client: &Client, machine: &DCSMachine, pool: &str) -> Result<Lease, PoolError> {
    let kube_err = |source| PoolError::Kube {
        pool: pool.to_string(),
        source,
    };
    let pools = api(client, machine);
    let p = pools
        .get_opt(pool)
        .await
        .map_err(kube_err)?
        .ok_or_else(|| PoolError::NotFound(pool.to_string()))?;
    let uid = machine.uid().unwrap_or_default();
    let mut status = p.status.clone().unwrap_or_default();
    let lease_of = |address: &str| {
        p.spec
            .entries
            .iter()
            .find(|e| e.address.address == address)
            .map(|e| Lease {
                address: e.address.clone(),
                hostname: e.hostname.clone(),
            })
    };
    if let Some(held) = status.allocations.iter().find(|a| a.machine_uid == uid) {
        return lease_of(&held.address).ok_or_else(|| PoolError::EntryRemoved {
            pool: pool.to_string(),
            address: held.address.clone(),
        });
    }
    let free = p
        .spec
        .entries
        .iter()
        .find(|e| !status.allocations.iter().any(|a| a.address == e.address.address))
        .ok_or_else(|| PoolError::Exhausted(pool.to_string()))?;
    status.allocations.push(PoolAllocation {
        address: free.address.address.clone(),
        machine_name: machine.name_any(),
        machine_uid: uid,
    });
    write(&pools, &p, status.allocations).await?;
    Ok(Lease {
        address: free.address.clone(),
        hostname: free.hostname.clone(),
    })
}

/// Gives the machine's entry back; nothing to do when the pool or the allocation is gone.
pub async fn release(client: &Client, machine: &DCSMachine, pool: &str) -> Result<(), PoolError> {
    let pools = api(client, machine);
    let Some(p) = pools.get_opt(pool).await.map_err(|source| PoolError::Kube {
        pool: pool.to_string(),
        source,
    })?
    else {
        return Ok(());
    };
    let uid = machine.uid().unwrap_or_default();
    let allocations = p.status.clone().unwrap_or_default().allocations;
    let kept: Vec<PoolAllocation> = allocations.iter().filter(|a| a.machine_uid != uid).cloned().collect();
    if kept.len() == allocations.len() {
        return Ok(());
    }
    write(&pools, &p, kept).await
}

/// Replaces the allocations, failing with `Conflict` when someone else changed the pool since `p`
/// was read.
async fn write(
    pools: &Api<DCSIPHostnamePool>,
    p: &DCSIPHostnamePool,
    allocations: Vec<PoolAllocation>,
) -> Result<(), PoolError> {
    let name = p.name_any();
    let patch = json!({
        "metadata": {"resourceVersion": p.resource_version()},
        "status": {"allocations": allocations, "allocatedCount": allocations.len()},
    });
    match pools
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Err(PoolError::Conflict(name)),
        Err(source) => Err(PoolError::Kube { pool: name, source }),
    }
}
