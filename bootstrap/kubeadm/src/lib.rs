//! `capstan-kubeadm`: a drop-in for Cluster API's kubeadm bootstrap provider (CABPK).
//!
//! - [`api`]: `KubeadmConfig` / `KubeadmConfigTemplate` (`bootstrap.cluster.x-k8s.io/v1beta2`).
//! - [`pki`]: the cluster CAs and service-account key as `<cluster>-<purpose>` Secrets.
//! - [`kubeconfig`]: the admin kubeconfig and its `<cluster>-kubeconfig` Secret.
//! - [`controller`]: the KubeadmConfig reconciler ([`KubeadmBootstrapProvider`], `--provider kubeadm`).
//! - [`document`]: one bootstrap document from spec + Cluster + Machine + certificates (also `capstan render`).
//! - [`offline`]: the same document without an API server (`capstan render`).
//! - [`render`]: kubeadm config (v1beta3/v1beta4) and cloud-config documents, byte-compatible with CABPK.

pub mod api;
pub mod controller;
pub mod discovery;
pub mod document;
pub mod kubeconfig;
pub mod offline;
pub mod pki;
mod provider;
pub mod render;

pub use provider::KubeadmBootstrapProvider;
