//! `capstan-kubeadm`: a drop-in for Cluster API's kubeadm bootstrap provider (CABPK).
//!
//! - [`api`]: `KubeadmConfig` / `KubeadmConfigTemplate` (`bootstrap.cluster.x-k8s.io/v1beta2`).

pub mod api;
