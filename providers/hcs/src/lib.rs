//! Huawei Cloud Stack support for Capstan (issue 14, in progress): the HCS API client (AK/SK
//! request signing, endpoints, classified errors, on the cloud kit). The provider on the
//! lifecycle core and its kinds follow; the HCS simulator is its own crate (`capstan-sim-hcs`)
//! and shares no code with this client.

pub mod client;
