//! The hookup to guest emulation. ECS hands a server its `user_data` and metadata through the
//! OpenStack metadata service, which cloud-init's OpenStack datasource reads: the simulator
//! passes the same as a [`capstan_guest::Datasource::Metadata`] — the decoded user data, and a
//! meta-data document with both the metadata service's keys (`uuid`, `name`,
//! `availability_zone`, `meta`) and cloud-init's normalised ones (`instance-id`,
//! `local-hostname`, `availability-zone`). A server without user data boots with
//! `Datasource::None`. ECS keeps `user_data`, so every start boots from the same data (the
//! guest itself runs cloud-init once).
//!
//! Callers build the [`capstan_guest::Guests`] they pass in [`crate::SimConfig::guests`] with
//! `GuestOptions { endpoint: EndpointMode::LoadBalanced, .. }`: on HCS the control-plane
//! endpoint is an ELB VIP in front of the servers, not an address a server holds.

use serde_json::json;

use crate::state::World;

impl World {
    pub fn boot_guest(&self, id: &str) {
        let (Some(g), Some(s)) = (&self.config.guests, self.servers.get(id)) else {
            return;
        };
        let info = capstan_guest::VmInfo {
            id: s.id.clone(),
            uuid: s.id.clone(),
            name: s.name.clone(),
            ips: vec![s.ip.to_string()],
            os: self
                .config
                .images
                .iter()
                .find(|i| i.id == s.image_id)
                .map(|i| i.guest_os)
                .unwrap_or_default(),
        };
        let source = if s.user_data.is_none() {
            capstan_guest::Datasource::None
        } else {
            capstan_guest::Datasource::Metadata(capstan_guest::nocloud::Seed {
                user_data: s.decoded_user_data(),
                meta_data: json!({
                    "uuid": s.id, "instance-id": s.id, "name": s.name,
                    "hostname": s.name, "local-hostname": s.name,
                    "availability_zone": s.az, "availability-zone": s.az,
                    "meta": s.metadata,
                }),
                network_config: None,
            })
        };
        g.power_on(info, source);
    }

    pub fn power_off_guest(&self, id: &str) {
        if let Some(g) = &self.config.guests {
            g.power_off(id);
        }
    }

    pub fn destroy_guest(&self, id: &str) {
        if let Some(g) = &self.config.guests {
            g.destroy(id);
        }
    }
}
