//! The admin kubeconfig CAPI keeps in `<cluster>-kubeconfig` (`util/kubeconfig/kubeconfig.go`).
//! Written by KCP, or by the Cluster controller when there is no control-plane provider; the
//! standalone Cluster controller calls [`admin_kubeconfig`] and [`kubeconfig_secret`].

use std::collections::BTreeMap;

use capstan_api::contract::LABEL_CLUSTER_NAME;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use openssl::base64::encode_block;

use crate::pki::{self, DEFAULT_CERT_VALIDITY_DAYS, SECRET_TYPE, VALUE_KEY};

pub use capstan_runtime::workload::kubeconfig_secret_name;

/// An admin kubeconfig for `server_url` (`https://<controlPlaneEndpoint>`): a fresh client
/// certificate (CN `kubernetes-admin`, O `system:masters`, one year) signed by the cluster CA;
/// cluster `<cluster>`, user `<cluster>-admin`, context `<cluster>-admin@<cluster>`. The layout is
/// what client-go's `clientcmd.Write` produces, so diffs against upstream stay empty.
pub fn admin_kubeconfig(
    cluster_name: &str,
    server_url: &str,
    ca_cert_pem: &[u8],
    ca_key_pem: &[u8],
) -> Result<String, pki::PkiError> {
    let client = pki::new_client_cert(
        ca_cert_pem,
        ca_key_pem,
        "kubernetes-admin",
        &["system:masters"],
        DEFAULT_CERT_VALIDITY_DAYS,
    )?;
    let user = format!("{cluster_name}-admin");
    let context = format!("{user}@{cluster_name}");
    let b64 = |b: &[u8]| encode_block(b).replace('\n', "");
    Ok(format!(
        "apiVersion: v1\n\
         clusters:\n\
         - cluster:\n    certificate-authority-data: {ca}\n    server: {server_url}\n  name: {cluster_name}\n\
         contexts:\n\
         - context:\n    cluster: {cluster_name}\n    user: {user}\n  name: {context}\n\
         current-context: {context}\n\
         kind: Config\n\
         preferences: {{}}\n\
         users:\n\
         - name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
        ca = b64(ca_cert_pem),
        cert = b64(&client.cert),
        key = b64(&client.key),
    ))
}

/// The `<cluster>-kubeconfig` Secret: type `cluster.x-k8s.io/secret`, label
/// `cluster.x-k8s.io/cluster-name`, key `value`, owned by `owner` (the Cluster or control plane).
pub fn kubeconfig_secret(
    cluster_name: &str,
    namespace: &str,
    kubeconfig: &str,
    owner: Option<OwnerReference>,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(kubeconfig_secret_name(cluster_name)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                LABEL_CLUSTER_NAME.to_string(),
                cluster_name.to_string(),
            )])),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([(
            VALUE_KEY.to_string(),
            ByteString(kubeconfig.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}
