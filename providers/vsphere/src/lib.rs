//! The vSphere infrastructure provider: for now its vim25 SOAP client ([`client`]).

pub mod client;
