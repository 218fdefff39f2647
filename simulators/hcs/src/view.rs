//! What tests read and change while the simulator runs ([`SimState`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::knobs::{Quotas, SimKnobs};
use crate::state::{Shared, World};

/// A server as tests see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimServerView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub task_state: String,
    pub az: String,
    pub ip: String,
    pub tags: BTreeMap<String, String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub flavor: String,
    pub image: String,
    pub has_user_data: bool,
    /// Decoded bytes.
    pub user_data_len: usize,
    pub scheduler_group: Option<String>,
    pub volumes: Vec<String>,
    /// What the guest is doing, when guest emulation is on.
    pub guest: Option<capstan_guest::GuestStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimVolumeView {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub volume_type: String,
    pub bootable: bool,
    pub server_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimMemberView {
    pub id: String,
    pub address: String,
    pub port: u16,
    pub operating_status: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimMonitorView {
    pub id: String,
    pub delay: u64,
    pub max_retries: u32,
    pub monitor_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimPoolView {
    pub id: String,
    pub algorithm: String,
    pub listener_id: Option<String>,
    pub members: Vec<SimMemberView>,
    pub healthmonitor: Option<SimMonitorView>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimListenerView {
    pub id: String,
    pub port: u16,
    pub default_pool_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimLoadBalancerView {
    pub id: String,
    pub name: String,
    pub vip_address: String,
    pub provisioning_status: String,
    pub listeners: Vec<SimListenerView>,
    pub pools: Vec<SimPoolView>,
}

/// Resources in use, as the quota sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUsage {
    pub instances: u64,
    pub cores: u64,
    pub ram_mib: u64,
    pub quotas: Quotas,
}

/// Inspection and control of a running simulator.
#[derive(Clone)]
pub struct SimState(pub(crate) Arc<Shared>);

fn server_view(w: &World, s: &crate::state::Server) -> SimServerView {
    SimServerView {
        id: s.id.clone(),
        name: s.name.clone(),
        status: s.status.to_string(),
        task_state: s.task_state.to_string(),
        az: s.az.clone(),
        ip: s.ip.to_string(),
        tags: s.tags.iter().cloned().collect(),
        metadata: s.metadata.clone(),
        flavor: s.flavor.name.clone(),
        image: s.image_name.clone(),
        has_user_data: s.user_data.is_some(),
        user_data_len: s.decoded_user_data().len(),
        scheduler_group: s.group.clone(),
        volumes: s.volumes.clone(),
        guest: w.config.guests.as_ref().and_then(|g| g.status(&s.id)),
    }
}

fn pool_view(w: &World, p: &crate::elb_model::Pool) -> SimPoolView {
    SimPoolView {
        id: p.id.clone(),
        algorithm: p.algorithm.clone(),
        listener_id: p.listener_id.clone(),
        members: w
            .elb
            .members
            .values()
            .filter(|m| m.pool_id == p.id)
            .map(|m| SimMemberView {
                id: m.id.clone(),
                address: m.address.to_string(),
                port: m.port,
                operating_status: m.status.to_string(),
            })
            .collect(),
        healthmonitor: w.elb.monitor_of(&p.id).map(|h| SimMonitorView {
            id: h.id.clone(),
            delay: h.delay,
            max_retries: h.max_retries,
            monitor_port: h.monitor_port,
        }),
    }
}

impl SimState {
    /// Every server, hidden (just created) ones included.
    pub fn servers(&self) -> Vec<SimServerView> {
        let w = self.0.lock();
        w.servers.values().map(|s| server_view(&w, s)).collect()
    }

    pub fn server_by_name(&self, name: &str) -> Option<SimServerView> {
        self.servers().into_iter().find(|s| s.name == name)
    }

    pub fn volumes(&self) -> Vec<SimVolumeView> {
        self.0
            .lock()
            .volumes
            .values()
            .map(|v| SimVolumeView {
                id: v.id.clone(),
                name: v.name.clone(),
                size: v.size,
                volume_type: v.volume_type.clone(),
                bootable: v.bootable,
                server_id: v.attachment.as_ref().map(|a| a.0.clone()),
            })
            .collect()
    }

    pub fn load_balancers(&self) -> Vec<SimLoadBalancerView> {
        let w = self.0.lock();
        w.elb
            .lbs
            .values()
            .map(|l| SimLoadBalancerView {
                id: l.id.clone(),
                name: l.name.clone(),
                vip_address: l.vip.to_string(),
                provisioning_status: l.provisioning_status.to_string(),
                listeners: w
                    .elb
                    .listeners
                    .values()
                    .filter(|x| x.lb_id == l.id)
                    .map(|x| SimListenerView {
                        id: x.id.clone(),
                        port: x.port,
                        default_pool_id: x.default_pool_id.clone(),
                    })
                    .collect(),
                pools: w
                    .elb
                    .pools
                    .values()
                    .filter(|p| p.lb_id == l.id)
                    .map(|p| pool_view(&w, p))
                    .collect(),
            })
            .collect()
    }

    /// Requests received per operation (`create_server`, `get_job`, `create_lb`, …, and
    /// `auth_failed`, `throttled`, `injected_error`), rejected ones included.
    pub fn call_count(&self, operation: &str) -> u64 {
        self.0.calls.get(operation)
    }

    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.0.calls.snapshot()
    }

    pub fn knobs(&self) -> SimKnobs {
        self.0.lock().knobs.clone()
    }

    pub fn update_knobs(&self, f: impl FnOnce(&mut SimKnobs)) {
        f(&mut self.0.lock().knobs);
    }

    pub fn quota_usage(&self) -> QuotaUsage {
        let w = self.0.lock();
        let (instances, cores, ram_mib) = w.usage();
        QuotaUsage {
            instances,
            cores,
            ram_mib,
            quotas: w.knobs.quotas,
        }
    }

    /// The server stops as if it crashed (`SHUTOFF`, guest off), without a job. False if there
    /// is no such server.
    pub fn stop_server_outside(&self, id: &str) -> bool {
        self.0.lock().stop_outside(id)
    }

    /// The guest emulation, if on.
    pub fn guests(&self) -> Option<capstan_guest::Guests> {
        self.0.lock().config.guests.clone()
    }
}
