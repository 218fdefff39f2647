//! The generic InfraCluster reconciler (CAPI v1beta2 contract).

use std::sync::Arc;

use capstan_api::conditions::{self, NewCondition};
use capstan_api::contract::{is_externally_managed, is_paused};
use capstan_runtime::finalizer;
use kube::api::{Api, Patch, PatchParams};
use kube::core::object::{HasSpec, HasStatus};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::context::Ctx;
use crate::credentials::Credentials;
use crate::machine::{Error, finalizer_name};
use crate::provider::*;
use crate::reasons::*;
use crate::status::{InfraClusterStatus, Initialization};

pub async fn reconcile<P>(obj: Arc<P::Cluster>, ctx: Arc<Ctx<P>>) -> Result<Action, Error>
where
    P: InfraProvider,
    <P::Cluster as HasSpec>::Spec: InfraClusterSpec,
{
    let c = obj.as_ref();
    if is_externally_managed(c.meta()) {
        return Ok(Action::await_change());
    }
    let ns = c.namespace().unwrap_or_default();
    let api: Api<P::Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let generation = c.meta().generation;
    let mut status = c.status().cloned().unwrap_or_default();
    status.observed_generation = generation;
    let fin = finalizer_name::<P::Cluster>();
    let key = capstan_runtime::backoff::ObjectKey::of(c);

    let owner = capstan_api::owner::owner_cluster(c.meta()).cloned();
    let cluster = match &owner {
        Some(o) => ctx.cluster(&ns, &o.name).await?,
        None => None,
    };

    if c.meta().deletion_timestamp.is_some() {
        if !c.finalizers().contains(&fin) {
            return Ok(Action::await_change());
        }
        let result = match Credentials::read(&ctx.client, &ns, c.spec().credentials_secret()).await {
            Ok(creds) => ctx
                .provider
                .delete_cluster_infra(c, &creds)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        return match result {
            Ok(()) => {
                finalizer::remove(&api, c, &fin, &ctx.field_manager).await?;
                info!("cluster infrastructure deleted");
                Ok(Action::await_change())
            }
            Err(message) => {
                conditions::set(
                    &mut status.conditions,
                    NewCondition::falsy(READY, DELETION_FAILED, message),
                    generation,
                );
                write_status::<P>(&ctx, &api, c, status).await?;
                Ok(Action::requeue(ctx.backoff.next_delay(&key)))
            }
        };
    }
    let (Some(_), Some(cluster)) = (owner, cluster) else {
        conditions::set(
            &mut status.conditions,
            NewCondition::falsy(READY, WAITING_FOR_OWNER, "Waiting for the owner Cluster to be set"),
            generation,
        );
        write_status::<P>(&ctx, &api, c, status).await?;
        return Ok(Action::await_change());
    };
    if finalizer::add(&api, c, &fin, &ctx.field_manager).await? {
        return Ok(Action::await_change());
    }
    let paused = is_paused(Some(&cluster), c.meta());
    conditions::set(&mut status.conditions, conditions::paused(paused), generation);
    if paused {
        write_status::<P>(&ctx, &api, c, status).await?;
        return Ok(Action::await_change());
    }

    let creds = match Credentials::read(&ctx.client, &ns, c.spec().credentials_secret()).await {
        Ok(creds) => creds,
        Err(e) => {
            let message = e.to_string();
            conditions::set(
                &mut status.conditions,
                NewCondition::falsy(CLOUD_AVAILABLE, CREDENTIALS_UNAVAILABLE, message.clone()),
                generation,
            );
            conditions::set(
                &mut status.conditions,
                NewCondition::falsy(READY, CREDENTIALS_UNAVAILABLE, message),
                generation,
            );
            write_status::<P>(&ctx, &api, c, status).await?;
            return Ok(Action::requeue(ctx.backoff.next_delay(&key)));
        }
    };
    if let Some(owner) = capstan_api::owner::owner_reference(c, false)
        && let Err(e) = Credentials::adopt(&ctx.client, &ns, c.spec().credentials_secret(), owner).await
    {
        // Not fatal for provisioning; retried on the next pass.
        warn!(error = %e, "could not add the owner reference and move label to the credentials Secret");
    }
    match ctx.provider.ensure_cluster_infra(c, &creds).await {
        Ok(infra) => {
            if let Some(ep) = infra.control_plane_endpoint.filter(|e| e.is_valid())
                && c.spec().control_plane_endpoint() != Some(&ep)
            {
                let patch = json!({"spec": {"controlPlaneEndpoint": ep}});
                api.patch(&c.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            status.failure_domains = Some(infra.failure_domains).filter(|f| !f.is_empty());
            status.initialization = Some(Initialization {
                provisioned: Some(true),
            });
            status.ready = Some(true);
            conditions::set(
                &mut status.conditions,
                NewCondition::truthy(CLOUD_AVAILABLE, CLOUD_AVAILABLE),
                generation,
            );
            conditions::set(&mut status.conditions, NewCondition::truthy(READY, READY), generation);
            ctx.backoff.reset(&key);
            write_status::<P>(&ctx, &api, c, status).await?;
            Ok(Action::requeue(ctx.resync_interval))
        }
        Err(e) => {
            let message = e.to_string();
            warn!(error = %message, retryable = e.is_retryable(), "cluster infrastructure not ready");
            conditions::set(
                &mut status.conditions,
                NewCondition::falsy(CLOUD_AVAILABLE, e.reason(), message.clone()),
                generation,
            );
            conditions::set(
                &mut status.conditions,
                NewCondition::falsy(READY, e.reason(), message),
                generation,
            );
            write_status::<P>(&ctx, &api, c, status).await?;
            let delay = if e.is_retryable() {
                ctx.backoff.next_delay(&key)
            } else {
                ctx.resync_interval
            };
            Ok(Action::requeue(delay))
        }
    }
}

async fn write_status<P: InfraProvider>(
    ctx: &Ctx<P>,
    api: &Api<P::Cluster>,
    c: &P::Cluster,
    status: InfraClusterStatus,
) -> Result<(), kube::Error> {
    if c.status() == Some(&status) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": P::Cluster::api_version(&()),
        "kind": P::Cluster::kind(&()),
        "status": status,
    });
    match api
        .patch_status(
            &c.name_any(),
            &PatchParams::apply(&ctx.field_manager).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
