//! The generic InfraCluster reconciler (CAPI v1beta2 contract).

use std::sync::Arc;

use capstan_api::conditions::{self, NewCondition};
use capstan_api::contract::{is_externally_managed, is_paused};
use capstan_api::core::Cluster;
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
use crate::status::{InfraClusterStatus, Initialization, put_resources, take_resources};

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
        return delete::<P>(&ctx, &api, c, cluster.as_ref(), status).await;
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
    let scope = ClusterScope::<P> {
        infra: c,
        cluster: Some(&cluster),
        credentials: &creds,
    };
    let mut resources = take_resources(&mut status.resources);
    let result = ctx.provider.ensure_cluster_infra(&scope, &mut resources).await;
    put_resources(&mut status.resources, resources);
    let delay = match result {
        Ok(ClusterProgress::Ready(infra)) => {
            ready::<P>(&api, c, &mut status, infra).await?;
            ctx.backoff.reset(&key);
            ctx.resync_interval
        }
        Ok(ClusterProgress::Pending(message)) => {
            info!(%message, "cluster infrastructure being built");
            for condition in [CLOUD_AVAILABLE, READY] {
                conditions::set(
                    &mut status.conditions,
                    NewCondition::falsy(condition, PROVISIONING, message.clone()),
                    generation,
                );
            }
            ctx.backoff.reset(&key);
            ctx.poll_interval
        }
        Err(e) => {
            let message = e.to_string();
            warn!(error = %message, retryable = e.is_retryable(), "cluster infrastructure not ready");
            for condition in [CLOUD_AVAILABLE, READY] {
                conditions::set(
                    &mut status.conditions,
                    NewCondition::falsy(condition, e.reason(), message.clone()),
                    generation,
                );
            }
            if e.is_retryable() {
                ctx.backoff.next_delay(&key)
            } else {
                ctx.resync_interval
            }
        }
    };
    write_status::<P>(&ctx, &api, c, status).await?;
    Ok(Action::requeue(delay))
}

/// Records infrastructure that is up: the endpoint it made (into the spec, the contract's
/// place for it), the failure domains, and provisioned.
async fn ready<P: InfraProvider>(
    api: &Api<P::Cluster>,
    c: &P::Cluster,
    status: &mut InfraClusterStatus<P::ClusterResources>,
    infra: ClusterInfra,
) -> Result<(), kube::Error>
where
    <P::Cluster as HasSpec>::Spec: InfraClusterSpec,
{
    let generation = c.meta().generation;
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
    Ok(())
}

/// Deletion: the provider removes what it built (possibly over several passes), then the
/// finalizer goes.
async fn delete<P>(
    ctx: &Ctx<P>,
    api: &Api<P::Cluster>,
    c: &P::Cluster,
    cluster: Option<&Cluster>,
    mut status: InfraClusterStatus<P::ClusterResources>,
) -> Result<Action, Error>
where
    P: InfraProvider,
    <P::Cluster as HasSpec>::Spec: InfraClusterSpec,
{
    let ns = c.namespace().unwrap_or_default();
    let generation = c.meta().generation;
    let key = capstan_runtime::backoff::ObjectKey::of(c);
    let mut resources = take_resources(&mut status.resources);
    let result = match Credentials::read(&ctx.client, &ns, c.spec().credentials_secret()).await {
        Ok(creds) => {
            let scope = ClusterScope::<P> {
                infra: c,
                cluster,
                credentials: &creds,
            };
            ctx.provider
                .delete_cluster_infra(&scope, &mut resources)
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    put_resources(&mut status.resources, resources);
    let (reason, message, delay) = match result {
        Ok(Removal::Done) => {
            finalizer::remove(api, c, &finalizer_name::<P::Cluster>(), &ctx.field_manager).await?;
            info!("cluster infrastructure deleted");
            return Ok(Action::await_change());
        }
        Ok(Removal::InProgress(message)) => (DELETING, message, ctx.poll_interval),
        Err(message) => (DELETION_FAILED, message, ctx.backoff.next_delay(&key)),
    };
    conditions::set(
        &mut status.conditions,
        NewCondition::falsy(READY, reason, message),
        generation,
    );
    write_status::<P>(ctx, api, c, status).await?;
    Ok(Action::requeue(delay))
}

async fn write_status<P: InfraProvider>(
    ctx: &Ctx<P>,
    api: &Api<P::Cluster>,
    c: &P::Cluster,
    status: InfraClusterStatus<P::ClusterResources>,
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
