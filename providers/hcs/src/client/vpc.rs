//! VPC: subnet lookups. A subnet has two ids and they are not interchangeable: ECS NICs take the
//! VPC subnet `id`, ELB VIPs and members take its `neutron_subnet_id`.

use reqwest::Method;
use serde::Deserialize;

use super::{Call, HcsClient, HcsError, Service};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subnet {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub cidr: String,
    pub vpc_id: String,
    #[serde(default)]
    pub gateway_ip: Option<String>,
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// The IPv4 subnet id ELB takes (`vip_subnet_cidr_id`, members' `subnet_cidr_id`).
    #[serde(default)]
    pub neutron_subnet_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

impl HcsClient {
    pub async fn get_subnet(&self, id: &str) -> Result<Subnet, HcsError> {
        #[derive(Deserialize)]
        struct One {
            subnet: Subnet,
        }
        let path = self.project_path("v1", &format!("subnets/{id}"));
        let one: One = self
            .call(Call::new(
                "get_subnet",
                Service::Vpc,
                Method::GET,
                path,
                format!("subnet {id}"),
            ))
            .await?;
        Ok(one.subnet)
    }
}
