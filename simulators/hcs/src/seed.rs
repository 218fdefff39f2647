//! The region's fixed inventory: VPCs, subnets, availability zones, flavors and images. Subnets
//! default to a loopback range so every server and VIP address can really be bound on Linux.

use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

/// A CIDR string that does not parse (a library error: callers show it to users).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an IPv4 CIDR block (a.b.c.d/n with n in 8..=30)")]
pub struct CidrError(pub String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let bad = || CidrError(s.to_string());
        let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr {
            network: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// The first host address, which HCS gives the gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Addresses servers and VIPs may get: after the gateway, before the broadcast address.
    pub fn assignable(&self) -> (u32, u32) {
        let net = u32::from(self.network);
        (net + 2, (net | !self.mask()) - 1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimVpc {
    pub id: String,
    pub name: String,
    pub cidr: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimSubnet {
    /// The VPC subnet id (what ECS `nics[].subnet_id` takes).
    pub id: String,
    pub name: String,
    pub cidr: Cidr,
    pub gateway_ip: Ipv4Addr,
    pub vpc_id: String,
    /// The Neutron IPv4 subnet id (what ELB `vip_subnet_cidr_id` and members take): a different
    /// id from `id`, as on HCS.
    pub neutron_subnet_id: String,
    pub neutron_network_id: String,
    pub availability_zone: String,
    pub dhcp_enable: bool,
}

impl SimSubnet {
    /// A subnet of `vpc_id` on `cidr`, its gateway the first host address.
    pub fn new(id: &str, name: &str, cidr: Cidr, vpc_id: &str, neutron_subnet_id: &str) -> Self {
        SimSubnet {
            id: id.into(),
            name: name.into(),
            cidr,
            gateway_ip: cidr.gateway(),
            vpc_id: vpc_id.into(),
            neutron_subnet_id: neutron_subnet_id.into(),
            neutron_network_id: id.into(),
            availability_zone: "az1".into(),
            dhcp_enable: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimFlavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram_mib: u64,
}

impl SimFlavor {
    /// A flavor whose id is its name, as on ECS.
    pub fn new(name: &str, vcpus: u32, ram_mib: u64) -> Self {
        SimFlavor {
            id: name.into(),
            name: name.into(),
            vcpus,
            ram_mib,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimImage {
    pub id: String,
    pub name: String,
    pub status: String,
    /// GB; the root volume must be at least this big.
    pub min_disk: u64,
    /// What the image boots with: cloud-init, or Ignition on platform `openstack` (which reads
    /// `user_data` unmodified).
    pub guest_os: capstan_guest::GuestOs,
}

pub const DEFAULT_VPC_ID: &str = "3c2a9f50-7b1e-4d6a-9e0f-5a1b2c3d4e01";
pub const DEFAULT_SUBNET_ID: &str = "8f4e1d2c-6a5b-4c3d-8e9f-0a1b2c3d4e02";
pub const DEFAULT_NEUTRON_SUBNET_ID: &str = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e503";

pub fn default_vpcs() -> Vec<SimVpc> {
    vec![SimVpc {
        id: DEFAULT_VPC_ID.into(),
        name: "vpc-sim".into(),
        cidr: "127.16.0.0/12".into(),
    }]
}

/// `subnet-sim` on `cidr` in the default VPC.
pub fn default_subnet(cidr: Cidr) -> SimSubnet {
    SimSubnet::new(
        DEFAULT_SUBNET_ID,
        "subnet-sim",
        cidr,
        DEFAULT_VPC_ID,
        DEFAULT_NEUTRON_SUBNET_ID,
    )
}

pub fn default_subnets() -> Vec<SimSubnet> {
    vec![default_subnet(Cidr {
        network: Ipv4Addr::new(127, 16, 0, 0),
        prefix: 16,
    })]
}

pub fn default_flavors() -> Vec<SimFlavor> {
    vec![
        SimFlavor::new("s6.large.2", 2, 4096),
        SimFlavor::new("s6.xlarge.2", 4, 8192),
        SimFlavor::new("c6.2xlarge.2", 8, 16384),
    ]
}

pub fn default_images() -> Vec<SimImage> {
    vec![
        SimImage {
            id: "6b1e0a3f-2c4d-4e5f-9a8b-7c6d5e4f3a21".into(),
            name: "capstan-ubuntu-22.04".into(),
            status: "active".into(),
            min_disk: 40,
            guest_os: capstan_guest::GuestOs::Ubuntu,
        },
        SimImage {
            id: "0d5c4b3a-2f1e-4d6c-8b7a-9e8f7d6c5b42".into(),
            name: "capstan-microos".into(),
            status: "active".into(),
            min_disk: 40,
            guest_os: capstan_guest::GuestOs::MicroOs,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_normalises_and_bounds() {
        let c: Cidr = "127.16.3.4/16".parse().unwrap();
        assert_eq!(c.to_string(), "127.16.0.0/16");
        assert_eq!(c.gateway(), Ipv4Addr::new(127, 16, 0, 1));
        assert!(c.contains(Ipv4Addr::new(127, 16, 255, 1)));
        assert!(!c.contains(Ipv4Addr::new(127, 17, 0, 1)));
        let (lo, hi) = c.assignable();
        assert_eq!(Ipv4Addr::from(lo), Ipv4Addr::new(127, 16, 0, 2));
        assert_eq!(Ipv4Addr::from(hi), Ipv4Addr::new(127, 16, 255, 254));
        assert!("127.0.0.0".parse::<Cidr>().is_err());
        assert!("127.0.0.0/31".parse::<Cidr>().is_err());
    }
}
