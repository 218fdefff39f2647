//! Name → URN lookups for the objects a machine template names: clusters, datastores and the
//! port groups of distributed switches. Answers are kept for a minute: a wave of machines from one
//! template asks the same questions, and names change rarely. A miss always asks VRM.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;

use super::{Body, DcsClient, DcsError};

/// A cluster, datastore, switch or port group: the fields placement needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryItem {
    pub urn: String,
    #[serde(default)]
    pub uri: String,
    #[serde(default)]
    pub name: String,
}

/// How long a resolved name (or the host list) is trusted.
const INVENTORY_TTL: Duration = Duration::from_secs(60);

/// Resolved names and the host list, per client (so per VRM and credentials).
#[derive(Default)]
pub(crate) struct InventoryCache {
    items: Mutex<HashMap<String, (Instant, InventoryItem)>>,
    hosts: Mutex<Option<(Instant, Vec<String>)>>,
}

impl InventoryCache {
    fn item(&self, key: &str) -> Option<InventoryItem> {
        let items = self.items.lock().expect("cache poisoned");
        items
            .get(key)
            .filter(|(at, _)| at.elapsed() < INVENTORY_TTL)
            .map(|(_, item)| item.clone())
    }

    fn put(&self, key: String, item: &InventoryItem) {
        let mut items = self.items.lock().expect("cache poisoned");
        items.retain(|_, (at, _)| at.elapsed() < INVENTORY_TTL);
        items.insert(key, (Instant::now(), item.clone()));
    }
}

#[derive(Deserialize)]
struct Clusters {
    #[serde(default)]
    clusters: Vec<InventoryItem>,
}

#[derive(Deserialize)]
struct Hosts {
    #[serde(default)]
    hosts: Vec<InventoryItem>,
}

#[derive(Deserialize)]
struct HostAddresses {
    #[serde(default)]
    hosts: Vec<HostAddress>,
}

/// A host's management address, where VRM has clients push uploads.
#[derive(Deserialize)]
struct HostAddress {
    #[serde(default)]
    ip: String,
}

#[derive(Deserialize)]
struct Datastores {
    #[serde(default)]
    datastores: Vec<InventoryItem>,
}

#[derive(Deserialize)]
struct DvSwitches {
    #[serde(default, rename = "dvSwitchs")]
    dv_switchs: Vec<InventoryItem>,
}

#[derive(Deserialize)]
struct PortGroups {
    #[serde(default, rename = "portGroups")]
    port_groups: Vec<InventoryItem>,
}

fn exactly_one(
    operation: &'static str,
    what: String,
    items: Vec<InventoryItem>,
    name: &str,
) -> Result<InventoryItem, DcsError> {
    let mut found: Vec<InventoryItem> = items.into_iter().filter(|i| i.name == name).collect();
    match found.len() {
        0 => Err(DcsError::NotFound {
            operation,
            what,
            fault: None,
        }),
        1 => Ok(found.remove(0)),
        count => Err(DcsError::Ambiguous { operation, what, count }),
    }
}

impl DcsClient {
    pub async fn find_cluster(&self, name: &str) -> Result<InventoryItem, DcsError> {
        self.cached(format!("cluster/{name}"), self.lookup_cluster(name)).await
    }

    async fn lookup_cluster(&self, name: &str) -> Result<InventoryItem, DcsError> {
        let mut url = self.site_url("clusters").await?;
        url.query_pairs_mut().append_pair("name", name);
        let list: Clusters = self
            .call("list_clusters", Method::GET, url, "clusters", Body::None)
            .await?;
        exactly_one("find_cluster", format!("cluster {name:?}"), list.clusters, name)
    }

    /// A host by name, for pinning a VM to it (its URN goes into the clone's `location`).
    pub async fn find_host(&self, name: &str) -> Result<InventoryItem, DcsError> {
        self.cached(format!("host/{name}"), self.lookup_host(name)).await
    }

    async fn lookup_host(&self, name: &str) -> Result<InventoryItem, DcsError> {
        let mut url = self.site_url("hosts").await?;
        url.query_pairs_mut()
            .append_pair("name", name)
            .append_pair("limit", "100")
            .append_pair("offset", "0");
        let list: Hosts = self.call("list_hosts", Method::GET, url, "hosts", Body::None).await?;
        exactly_one("find_host", format!("host {name:?}"), list.hosts, name)
    }

    async fn cached(
        &self,
        key: String,
        lookup: impl Future<Output = Result<InventoryItem, DcsError>>,
    ) -> Result<InventoryItem, DcsError> {
        if let Some(item) = self.inner.inventory.item(&key) {
            return Ok(item);
        }
        let item = lookup.await?;
        self.inner.inventory.put(key, &item);
        Ok(item)
    }

    /// The host list of the last minute, unless `fresh`; a fresh one is kept for the next call.
    pub(crate) async fn recent_host_addresses(&self, fresh: bool) -> Result<Vec<String>, DcsError> {
        if !fresh
            && let Some((at, hosts)) = self.inner.inventory.hosts.lock().expect("cache poisoned").as_ref()
            && at.elapsed() < INVENTORY_TTL
        {
            return Ok(hosts.clone());
        }
        let hosts = self.host_addresses().await?;
        *self.inner.inventory.hosts.lock().expect("cache poisoned") = Some((Instant::now(), hosts.clone()));
        Ok(hosts)
    }

    /// The management addresses of the site's hosts (the first 100).
    pub async fn host_addresses(&self) -> Result<Vec<String>, DcsError> {
        let mut url = self.site_url("hosts").await?;
        url.query_pairs_mut()
            .append_pair("limit", "100")
            .append_pair("offset", "0");
        let list: HostAddresses = self.call("list_hosts", Method::GET, url, "hosts", Body::None).await?;
        Ok(list
            .hosts
            .into_iter()
            .map(|h| h.ip)
            .filter(|ip| !ip.is_empty())
            .collect())
    }

    pub async fn find_datastore(&self, name: &str) -> Result<InventoryItem, DcsError> {
        self.cached(format!("datastore/{name}"), self.lookup_datastore(name))
            .await
    }

    async fn lookup_datastore(&self, name: &str) -> Result<InventoryItem, DcsError> {
        let mut url = self.site_url("datastores").await?;
        url.query_pairs_mut()
            .append_pair("name", name)
            .append_pair("limit", "100")
            .append_pair("offset", "0");
        let list: Datastores = self
            .call("list_datastores", Method::GET, url, "datastores", Body::None)
            .await?;
        exactly_one("find_datastore", format!("datastore {name:?}"), list.datastores, name)
    }

    /// The port group `port_group` on the distributed switch `dvswitch`; its URN goes into
    /// [`super::NicSpec::port_group_urn`].
    pub async fn find_port_group(&self, dvswitch: &str, port_group: &str) -> Result<InventoryItem, DcsError> {
        self.cached(
            format!("portgroup/{dvswitch}/{port_group}"),
            self.lookup_port_group(dvswitch, port_group),
        )
        .await
    }

    async fn lookup_port_group(&self, dvswitch: &str, port_group: &str) -> Result<InventoryItem, DcsError> {
        let mut url = self.site_url("dvswitchs").await?;
        url.query_pairs_mut().append_pair("name", dvswitch);
        let switches: DvSwitches = self
            .call("list_dvswitches", Method::GET, url, "dvswitchs", Body::None)
            .await?;
        let switch = exactly_one(
            "find_port_group",
            format!("distributed switch {dvswitch:?}"),
            switches.dv_switchs,
            dvswitch,
        )?;
        let uri = if switch.uri.is_empty() {
            super::urn::urn_to_uri(&switch.urn).unwrap_or_default()
        } else {
            switch.uri.clone()
        };
        let mut url = self.url(&format!("{uri}/portgroups"))?;
        url.query_pairs_mut()
            .append_pair("portGroupName", port_group)
            .append_pair("limit", "100")
            .append_pair("offset", "0");
        let groups: PortGroups = self
            .call("list_port_groups", Method::GET, url, "portgroups", Body::None)
            .await?;
        exactly_one(
            "find_port_group",
            format!("port group {port_group:?} on {dvswitch:?}"),
            groups.port_groups,
            port_group,
        )
    }
}
