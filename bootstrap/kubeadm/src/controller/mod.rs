//! The KubeadmConfig reconciler, following CABPK's `kubeadmconfig_controller.go` step by step:
//! owner Machine, Cluster, pause, infrastructure, adoption, init lock, init vs join, discovery and
//! tokens, data secret, conditions.

mod certs;
pub mod lock;
pub mod resolve;
mod status;
pub mod token;

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_api::contract::{LABEL_CLUSTER_NAME, is_paused};
use capstan_api::core::{Cluster, Machine};
use capstan_api::owner::{controller_owner, owner_machine, owner_reference};
use capstan_runtime::ProviderContext;
use capstan_runtime::backoff::{FailureBackoff, ObjectKey};
use capstan_runtime::metrics::Metrics;
use capstan_runtime::predicate::ChangeFilter;
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info, info_span, warn};

pub use status::*;

use crate::api::{File, KubeadmConfig, KubeadmConfigSpec};
use crate::document::{self, DocumentInput, endpoint_string};
use crate::pki::{Certificates, Purpose, SECRET_TYPE, VALUE_KEY};
use crate::render::{DocumentKind, KubeadmApi, RenderError};

const CONTROLLER: &str = "kubeadmconfig";
/// Upstream's `--bootstrap-token-ttl` default.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Workers and lock losers wait this long for the control plane (upstream: 30 s).
const WAIT_FOR_CONTROL_PLANE: Duration = Duration::from_secs(30);
/// An invalid control-plane endpoint is re-checked after 10 s, as upstream.
const WAIT_FOR_ENDPOINT: Duration = Duration::from_secs(10);
/// Missing referenced Secrets are not watched; look again after this long.
const WAIT_FOR_INPUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Options {
    /// TTL of the bootstrap tokens created in workload clusters.
    pub token_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token_ttl: DEFAULT_TOKEN_TTL,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("workload cluster: {0}")]
    Workload(String),
    #[error(transparent)]
    Discovery(#[from] crate::discovery::TokenDiscoveryError),
    #[error("bootstrap data secret {0} is controlled by another object ({1})")]
    SecretOwnedByOther(String, String),
}

impl Error {
    /// Errors that no retry fixes until the user changes an input.
    fn is_input_problem(&self) -> bool {
        matches!(
            self,
            Error::Pki(_) | Error::Render(_) | Error::Discovery(_) | Error::SecretOwnedByOther(..)
        )
    }

    fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeError",
            Error::Pki(_) => "CertificatesError",
            Error::Render(e) => e.reason(),
            Error::Discovery(_) => "DiscoveryError",
            Error::Workload(_) => "WorkloadClusterError",
            Error::SecretOwnedByOther(..) => "SecretOwnedByOther",
        }
    }
}

struct Ctx {
    client: Client,
    metrics: Arc<Metrics>,
    backoff: FailureBackoff,
    opts: Options,
    workload: capstan_runtime::workload::WorkloadClients,
}

/// Runs the controller until `ctx.shutdown` fires.
pub async fn run(ctx: ProviderContext, opts: Options) {
    let configs: Api<KubeadmConfig> = ctx.scope.api(ctx.client.clone());
    let machines: Api<Machine> = ctx.scope.api(ctx.client.clone());
    let clusters: Api<Cluster> = ctx.scope.api(ctx.client.clone());
    let state = Arc::new(Ctx {
        client: ctx.client.clone(),
        metrics: ctx.metrics.clone(),
        backoff: FailureBackoff::default(),
        opts,
        workload: Default::default(),
    });
    let controller = Controller::new(configs, ctx.scope.watcher_config())
        .with_config(ctx.concurrency.controller_config("kubeadmconfig"));
    let store = controller.store();
    let shutdown = ctx.shutdown.clone();
    // Status churn on Machines and Clusters (conditions, replica counts) wakes nobody: only the
    // fields this controller reads do.
    let machine_changes = ChangeFilter::new(|m: &Machine| {
        (
            m.spec.version.clone(),
            m.data_secret_name().map(str::to_string),
            m.is_control_plane(),
            m.status.as_ref().is_some_and(|s| s.node_ref.is_some()),
        )
    });
    let cluster_changes = ChangeFilter::new(|c: &Cluster| {
        (
            c.infrastructure_provisioned(),
            capstan_api::conditions::is_true(
                &c.status.as_ref().and_then(|s| s.conditions.clone()),
                "ControlPlaneInitialized",
            ),
            is_paused(Some(c), c.meta()),
            c.spec.control_plane_endpoint.clone(),
        )
    });
    controller
        // A Machine points at its config through spec.bootstrap.configRef.
        .watches(machines, ctx.scope.watcher_config(), move |m: Machine| {
            if !machine_changes.changed(&m) {
                return None;
            }
            let r = m.spec.bootstrap.config_ref.as_ref()?;
            let ns = m.namespace()?;
            (r.kind == "KubeadmConfig" && r.api_group == crate::api::GROUP)
                .then(|| ObjectRef::<KubeadmConfig>::new(&r.name).within(&ns))
        })
        // Infrastructure becoming ready, pause and control-plane initialization all live on the
        // Cluster: wake every config of that cluster.
        .watches(clusters, ctx.scope.watcher_config(), move |c: Cluster| {
            if !cluster_changes.changed(&c) {
                return Vec::new();
            }
            let ns = c.namespace();
            let name = c.name_any();
            store
                .state()
                .into_iter()
                .filter(|k| k.namespace() == ns && k.labels().get(LABEL_CLUSTER_NAME) == Some(&name))
                .map(|k| ObjectRef::from_obj(&*k))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
}

async fn reconcile(config: Arc<KubeadmConfig>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let key = ObjectKey::of(config.as_ref());
    let span = info_span!("reconcile", controller = CONTROLLER, object = %key);
    let started = Instant::now();
    let result = reconcile_config(&config, &ctx).instrument(span).await;
    ctx.metrics
        .observe_reconcile(CONTROLLER, started.elapsed(), result.as_ref().err().map(Error::reason));
    if result.is_ok() {
        ctx.backoff.reset(&key);
    }
    result
}

fn error_policy(config: Arc<KubeadmConfig>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let key = ObjectKey::of(config.as_ref());
    let delay = ctx.backoff.next_delay(&key);
    warn!(controller = CONTROLLER, object = %key, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// What one reconcile works on.
struct Scope<'a> {
    ctx: &'a Ctx,
    config: &'a KubeadmConfig,
    machine: Machine,
    cluster: Cluster,
    ns: String,
    status: StatusBuilder,
}

async fn reconcile_config(config: &KubeadmConfig, ctx: &Ctx) -> Result<Action, Error> {
    // No finalizer: the data secret goes with its owner reference.
    if config.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = config.namespace().unwrap_or_default();
    let Some(owner) = owner_machine(config.meta()) else {
        info!("waiting for the owner Machine to be set");
        return Ok(Action::await_change());
    };
    let machines: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(machine) = machines.get_opt(&owner.name).await? else {
        return Ok(Action::await_change());
    };
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cluster) = clusters.get_opt(&machine.spec.cluster_name).await? else {
        info!(cluster = %machine.spec.cluster_name, "waiting for the Cluster");
        return Ok(Action::await_change());
    };
    let mut s = Scope {
        ctx,
        config,
        machine,
        cluster,
        ns,
        status: StatusBuilder::new(config.status.as_ref(), config.meta().generation),
    };
    let paused = is_paused(Some(&s.cluster), config.meta());
    s.status.paused(paused);
    if paused {
        write_status(ctx, config, s.status.status.clone()).await?;
        return Ok(Action::await_change());
    }
    let result = steps(&mut s).await;
    if let Err(e) = &result
        && e.is_input_problem()
    {
        // A bad spec or PKI is the user's to fix: say so on the object, not only in our logs.
        s.status
            .failed(DATA_SECRET_AVAILABLE, e.reason(), &e.to_string(), V1_DATA_SECRET_FAILED);
    }
    let status = std::mem::replace(&mut s.status, StatusBuilder::new(None, None)).finish();
    write_status(ctx, config, status).await?;
    result
}

async fn steps(s: &mut Scope<'_>) -> Result<Action, Error> {
    ensure_bootstrap_secret_owner(s).await?;

    if !s.cluster.infrastructure_provisioned() {
        s.status.not_available(
            DATA_SECRET_AVAILABLE,
            MSG_WAITING_FOR_INFRA,
            V1_WAITING_FOR_INFRA,
            "Info",
        );
        // The Cluster watch brings us back.
        return Ok(Action::await_change());
    }

    // Pivot, clusterctl move or restore: the Machine already has data; take it over as is.
    if let Some(name) = s.machine.data_secret_name().map(str::to_string)
        && !s.config.data_secret_created()
    {
        info!(secret = %name, "adopting existing bootstrap data");
        s.status.data_secret(&name);
        s.status.available(DATA_SECRET_AVAILABLE);
        s.status.available(CERTIFICATES_AVAILABLE);
        return Ok(Action::await_change());
    }

    // Bootstrap data is never regenerated; only the token is kept alive until the node joins.
    if s.config.data_secret_created() {
        s.status.available(DATA_SECRET_AVAILABLE);
        s.status.available(CERTIFICATES_AVAILABLE);
        let token = &s.config.spec.join_configuration.discovery.bootstrap_token.token;
        let has_node = s.machine.status.as_ref().is_some_and(|st| st.node_ref.is_some());
        if !token.is_empty() && !has_node {
            let ttl = s.ctx.opts.token_ttl;
            let workload = token::workload_client(s.ctx, &s.cluster).await?;
            if token::refresh_token(&workload, token, ttl).await? {
                info!("bootstrap token expiration extended");
            }
            return Ok(Action::requeue(ttl / 3));
        }
        return Ok(Action::await_change());
    }

    let initialized = capstan_api::conditions::is_true(
        &s.cluster.status.as_ref().and_then(|st| st.conditions.clone()),
        "ControlPlaneInitialized",
    );
    if !initialized {
        return init(s).await;
    }
    if let Err(e) = lock::unlock(&s.ctx.client, &s.cluster).await {
        warn!(error = %e, "could not release the init lock");
    }
    if s.machine.is_control_plane() {
        join(s, true).await
    } else {
        join(s, false).await
    }
}

/// A user-facing problem with the inputs: shown on DataSecretAvailable, not retried with backoff.
fn input_problem(s: &mut Scope<'_>, message: String, retry: Option<Duration>) -> Result<Action, Error> {
    warn!(problem = %message, "cannot generate bootstrap data");
    s.status
        .not_available(DATA_SECRET_AVAILABLE, &message, V1_DATA_SECRET_FAILED, "Warning");
    Ok(retry.map(Action::requeue).unwrap_or_else(Action::await_change))
}

fn machine_version(s: &Scope<'_>) -> Result<String, String> {
    let Some(v) = s.machine.spec.version.clone() else {
        return Err(format!(
            "Machine {} has no spec.version: the kubeadm bootstrap provider needs the Kubernetes version",
            s.machine.name_any()
        ));
    };
    KubeadmApi::for_version(&v).map_err(|e| e.to_string())?;
    if s.config.spec.format == Some(crate::api::Format::Ignition) {
        crate::render::ignition::spec_version(ignition_annotation(s.config).as_deref()).map_err(|e| e.to_string())?;
    }
    Ok(v)
}

fn ignition_annotation(config: &KubeadmConfig) -> Option<String> {
    config
        .annotations()
        .get(crate::render::ignition::VERSION_ANNOTATION)
        .cloned()
}

async fn init(s: &mut Scope<'_>) -> Result<Action, Error> {
    // Upstream sets this only when absent (so failure messages do not flicker); replacing the
    // infrastructure-wait message too keeps the condition from pointing at a solved problem.
    if !s.status.has(DATA_SECRET_AVAILABLE) || s.status.message_is(DATA_SECRET_AVAILABLE, MSG_WAITING_FOR_INFRA) {
        s.status.not_available(
            DATA_SECRET_AVAILABLE,
            MSG_WAITING_FOR_CP,
            V1_WAITING_FOR_CONTROL_PLANE,
            "Info",
        );
    }
    if !s.machine.is_control_plane() {
        return Ok(Action::requeue(WAIT_FOR_CONTROL_PLANE));
    }
    if !lock::lock(&s.ctx.client, &s.cluster, &s.machine).await? {
        return Ok(Action::requeue(WAIT_FOR_CONTROL_PLANE));
    }
    let result = init_locked(s).await;
    // Anything short of stored data gives the lock back so another machine can try.
    if !matches!(result, Ok(Stored::Yes))
        && let Err(e) = lock::unlock(&s.ctx.client, &s.cluster).await
    {
        warn!(error = %e, "could not release the init lock");
    }
    result.map(|r| match r {
        Stored::Yes => Action::await_change(),
        Stored::No(a) => a,
    })
}

enum Stored {
    Yes,
    No(Action),
}

async fn init_locked(s: &mut Scope<'_>) -> Result<Stored, Error> {
    let version = match machine_version(s) {
        Ok(v) => v,
        Err(m) => return input_problem(s, m, None).map(Stored::No),
    };
    let spec = &s.config.spec;
    let mut certs = Certificates::for_initial_control_plane(&spec.cluster_configuration);
    let certs_result = if s.cluster.spec.control_plane_ref.is_none() {
        match owner_reference(s.config, true) {
            Some(owner) => {
                certs::lookup_or_generate(
                    &s.ctx.client,
                    &s.cluster,
                    &mut certs,
                    &spec.cluster_configuration,
                    owner,
                )
                .await
            }
            None => Ok(()),
        }
    } else {
        // The control-plane provider (KCP) generates them; only read.
        match certs::lookup(&s.ctx.client, &s.cluster, &mut certs).await {
            Ok(()) => certs.ensure_all_exist(&s.cluster.name_any()).map_err(Error::from),
            Err(e) => Err(e),
        }
    };
    if let Err(e) = certs_result {
        s.status.internal_error(CERTIFICATES_AVAILABLE, V1_CERTIFICATES_FAILED);
        return Err(e);
    }
    s.status.available(CERTIFICATES_AVAILABLE);
    let (files, users) = match resolve_inputs(s).await? {
        Ok(v) => v,
        Err(a) => return Ok(Stored::No(a)),
    };
    let doc = document::render(DocumentInput {
        kind: DocumentKind::InitControlPlane,
        spec: &s.config.spec,
        cluster: &s.cluster,
        kubernetes_version: &version,
        certificates: &certs,
        files,
        users,
        additional_files: Vec::new(),
        ignition_version: ignition_annotation(s.config),
    })?;
    store_bootstrap_data(s, &doc).await?;
    info!("stored control-plane init data");
    Ok(Stored::Yes)
}

type Resolved = (Vec<File>, Vec<crate::api::User>);

async fn resolve_inputs(s: &mut Scope<'_>) -> Result<Result<Resolved, Action>, Error> {
    let files = match resolve::files(&s.ctx.client, &s.ns, &s.config.spec, None).await? {
        Ok(f) => f,
        Err(e) => {
            let a = input_problem(s, format!("Failed to prepare spec.files: {e}"), Some(WAIT_FOR_INPUT))?;
            return Ok(Err(a));
        }
    };
    let users = match resolve::users(&s.ctx.client, &s.ns, &s.config.spec).await? {
        Ok(u) => u,
        Err(e) => {
            let a = input_problem(
                s,
                format!("Failed to read password from secrets for spec.users: {e}"),
                Some(WAIT_FOR_INPUT),
            )?;
            return Ok(Err(a));
        }
    };
    Ok(Ok((files, users)))
}

async fn join(s: &mut Scope<'_>, control_plane: bool) -> Result<Action, Error> {
    if !control_plane && s.config.spec.join_configuration.control_plane.is_some() {
        let m = format!(
            "spec.joinConfiguration.controlPlane is set but Machine {} is not a control-plane Machine (no {} label): remove joinConfiguration.controlPlane or label the Machine",
            s.machine.name_any(),
            capstan_api::contract::LABEL_CONTROL_PLANE
        );
        return input_problem(s, m, None);
    }
    let version = match machine_version(s) {
        Ok(v) => v,
        Err(m) => return input_problem(s, m, None),
    };
    let mut spec: KubeadmConfigSpec = s.config.spec.clone();
    let mut certs = if control_plane {
        Certificates::for_control_plane_join(&spec.cluster_configuration)
    } else {
        Certificates::for_worker(&spec.join_configuration.ca_cert_path)
    };
    let lookup = match certs::lookup(&s.ctx.client, &s.cluster, &mut certs).await {
        Ok(()) => certs.ensure_all_exist(&s.cluster.name_any()).map_err(Error::from),
        Err(e) => Err(e),
    };
    if let Err(e) = lookup {
        s.status.not_available(
            CERTIFICATES_AVAILABLE,
            &format!("Failed to read cluster certificates: {e}"),
            V1_CERTIFICATES_CORRUPTED,
            "Warning",
        );
        return Err(e);
    }
    s.status.available(CERTIFICATES_AVAILABLE);

    // Discovery defaults, persisted into the spec (the only spec fields this controller writes).
    let mut additional_files = Vec::new();
    let mut token_discovery = false;
    if let Some(file) = spec.join_configuration.discovery.file.clone() {
        if let Some(kc) = &file.kube_config {
            let ca = certs
                .get(Purpose::ClusterCa)
                .and_then(|c| c.key_pair.as_ref())
                .map(|k| k.cert.clone())
                .unwrap_or_default();
            let server = s
                .cluster
                .spec
                .control_plane_endpoint
                .as_ref()
                .and_then(endpoint_string)
                .map(|e| format!("https://{e}"))
                .unwrap_or_default();
            additional_files.push(crate::discovery::kubeconfig_file(
                &file.kube_config_path,
                kc,
                &server,
                &ca,
            ));
        }
    } else {
        token_discovery = true;
        let ca_pem = certs
            .get(Purpose::ClusterCa)
            .and_then(|c| c.key_pair.as_ref())
            .map(|k| k.cert.clone())
            .unwrap_or_default();
        let bt = &mut spec.join_configuration.discovery.bootstrap_token;
        match crate::discovery::default_bootstrap_token(bt, &s.cluster, &ca_pem) {
            Ok(()) => {}
            Err(crate::discovery::TokenDiscoveryError::NoEndpoint) => {
                info!("waiting for Cluster.spec.controlPlaneEndpoint");
                return Ok(Action::requeue(WAIT_FOR_ENDPOINT));
            }
            Err(e) => return Err(Error::Discovery(e)),
        }
        if bt.token.is_empty() {
            let workload = token::workload_client(s.ctx, &s.cluster).await?;
            bt.token = token::create_token(&workload, s.ctx.opts.token_ttl).await?;
            info!("created bootstrap token in the workload cluster");
        }
    }
    if control_plane && spec.join_configuration.control_plane.is_none() {
        spec.join_configuration.control_plane = Some(Default::default());
    }
    write_back_spec(s, &spec).await?;

    let (files, users) = match resolve_inputs(s).await? {
        Ok(v) => v,
        Err(a) => return Ok(a),
    };
    let doc = document::render(DocumentInput {
        kind: if control_plane {
            DocumentKind::JoinControlPlane
        } else {
            DocumentKind::JoinWorker
        },
        spec: &spec,
        cluster: &s.cluster,
        kubernetes_version: &version,
        certificates: &certs,
        files,
        users,
        additional_files,
        ignition_version: ignition_annotation(s.config),
    })?;
    store_bootstrap_data(s, &doc).await?;
    info!(control_plane, "stored join data");
    Ok(if token_discovery {
        Action::requeue(s.ctx.opts.token_ttl / 3)
    } else {
        Action::await_change()
    })
}

/// Persists discovery and `joinConfiguration.controlPlane`, nothing else: KCP compares the rest
/// of the spec with its own to decide on rollouts.
async fn write_back_spec(s: &Scope<'_>, spec: &KubeadmConfigSpec) -> Result<(), Error> {
    let old = &s.config.spec.join_configuration;
    let new = &spec.join_configuration;
    if old.discovery == new.discovery && old.control_plane == new.control_plane {
        return Ok(());
    }
    let mut join = serde_json::Map::new();
    join.insert(
        "discovery".into(),
        serde_json::to_value(&new.discovery).unwrap_or_default(),
    );
    if let Some(cp) = &new.control_plane {
        join.insert("controlPlane".into(), serde_json::to_value(cp).unwrap_or_default());
    }
    let api: Api<KubeadmConfig> = Api::namespaced(s.ctx.client.clone(), &s.ns);
    let patch = json!({
        "metadata": {"resourceVersion": s.config.resource_version()},
        "spec": {"joinConfiguration": join},
    });
    api.patch(&s.config.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// `ensureBootstrapSecretOwnersRef`: the data secret is controlled by this KubeadmConfig.
async fn ensure_bootstrap_secret_owner(s: &Scope<'_>) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(s.ctx.client.clone(), &s.ns);
    let name = s.config.name_any();
    let Some(secret) = secrets.get_opt(&name).await? else {
        return Ok(());
    };
    let Some(want) = owner_reference(s.config, true) else {
        return Ok(());
    };
    if let Some(c) = controller_owner(secret.meta()) {
        if c.kind != "KubeadmConfig" {
            return Err(Error::SecretOwnedByOther(name, format!("{} {}", c.kind, c.name)));
        }
        if c.uid == want.uid {
            return Ok(());
        }
    }
    let mut meta = secret.metadata.clone();
    let refs = meta.owner_references.get_or_insert_with(Vec::new);
    refs.retain(|o| o.controller != Some(true));
    refs.push(want);
    let patch =
        json!({"metadata": {"ownerReferences": meta.owner_references, "resourceVersion": secret.resource_version()}});
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// `storeBootstrapData`: Secret `<config name>`, type `cluster.x-k8s.io/secret`, keys `value`
/// and `format`, controlled by the KubeadmConfig; then the contract status fields.
async fn store_bootstrap_data(s: &mut Scope<'_>, data: &str) -> Result<(), Error> {
    let name = s.config.name_any();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(s.ns.clone()),
            labels: Some([(LABEL_CLUSTER_NAME.to_string(), s.cluster.name_any())].into()),
            owner_references: owner_reference(s.config, true).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        data: Some(
            [
                (VALUE_KEY.to_string(), ByteString(data.as_bytes().to_vec())),
                (
                    "format".to_string(),
                    ByteString(s.config.spec.format.unwrap_or_default().as_str().as_bytes().to_vec()),
                ),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let secrets: Api<Secret> = Api::namespaced(s.ctx.client.clone(), &s.ns);
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = secrets.get(&name).await?;
            let updated = Secret {
                metadata: existing.metadata,
                ..secret
            };
            secrets.replace(&name, &PostParams::default(), &updated).await?;
        }
        Err(e) => return Err(e.into()),
    }
    s.status.data_secret(&name);
    s.status.available(DATA_SECRET_AVAILABLE);
    Ok(())
}

async fn write_status(
    ctx: &Ctx,
    config: &KubeadmConfig,
    status: crate::api::KubeadmConfigStatus,
) -> Result<(), kube::Error> {
    if config.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<KubeadmConfig> = Api::namespaced(ctx.client.clone(), &config.namespace().unwrap_or_default());
    let patch = json!({"status": status});
    api.patch_status(&config.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}
