//! Reading (and for standalone control planes, generating) the cluster certificates Secrets in
//! the management cluster. Existing Secrets are always reused, never rotated.

use capstan_api::core::Cluster;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use super::Error;
use crate::api::ClusterConfiguration;
use crate::pki::{Certificates, ca_validity_days};

/// Fills every certificate from its Secret, if it exists.
pub async fn lookup(client: &Client, cluster: &Cluster, certs: &mut Certificates) -> Result<(), Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let name = cluster.name_any();
    for cert in &mut certs.0 {
        if let Some(s) = secrets.get_opt(&cert.purpose.secret_name(&name)).await? {
            cert.load_secret(&s)?;
        }
    }
    Ok(())
}

/// Looks every certificate up and generates (and stores, owned by `owner`) the missing ones.
pub async fn lookup_or_generate(
    client: &Client,
    cluster: &Cluster,
    certs: &mut Certificates,
    cfg: &ClusterConfiguration,
    owner: OwnerReference,
) -> Result<(), Error> {
    lookup(client, cluster, certs).await?;
    certs.generate_missing(cfg.encryption_algorithm.unwrap_or_default(), ca_validity_days(cfg))?;
    let ns = cluster.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for cert in certs.0.iter_mut().filter(|c| c.generated) {
        let Some(secret) = cert.to_secret(&cluster.name_any(), &ns, Some(owner.clone())) else {
            continue;
        };
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {}
            // Someone (another reconcile, KCP) stored it first: use theirs, never ours.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = secrets.get(&cert.purpose.secret_name(&cluster.name_any())).await?;
                cert.load_secret(&existing)?;
                cert.generated = false;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
