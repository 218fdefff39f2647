//! Huawei Cloud Stack support for Capstan (issue 14, in progress): the HCS API client, starting
//! with AK/SK request signing. The provider on the lifecycle core, its kinds and the HCS
//! simulator (its own crate, sharing no code with this client) follow.

pub mod client;
