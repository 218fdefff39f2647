//! The HCS API client: IAM (Keystone v3 tokens or AK/SK signing), ECS, VPC, ELB v3, EVS.

pub mod signer;
