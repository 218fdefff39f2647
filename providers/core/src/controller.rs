//! Wiring: the two controllers of a provider, and the [`capstan_runtime::Provider`] adapter the
//! manager starts by name.

use std::sync::Arc;
use std::time::Duration;

use capstan_api::contract::LABEL_CLUSTER_NAME;
use capstan_api::core::{ApiEndpoint, Cluster, Machine};
use capstan_runtime::backoff::ObjectKey;
use capstan_runtime::predicate::ChangeFilter;
use capstan_runtime::preflight::RequiredCrd;
use capstan_runtime::{BoxError, ProviderContext};
use futures::StreamExt;
use futures::future::BoxFuture;
use kube::core::object::HasSpec;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span, warn};

use crate::context::{Ctx, Stores, Timer};
use crate::machine::Error;
use crate::provider::*;

type Factory<P> = Box<dyn Fn(kube::Client, Arc<capstan_runtime::metrics::Metrics>) -> P + Send + Sync>;
type Companion = Box<dyn Fn(ProviderContext) -> BoxFuture<'static, ()> + Send + Sync>;

/// Runs a provider's InfraCluster and InfraMachine controllers through the manager.
pub struct LifecycleProvider<P> {
    name: &'static str,
    installed_by: &'static str,
    factory: Factory<P>,
    poll_interval: Option<Duration>,
    resync_interval: Option<Duration>,
    backoff: Option<(Duration, Duration)>,
    operation_timeout: Option<Duration>,
    companions: Vec<Companion>,
    companion_crds: Vec<RequiredCrd>,
}

impl<P: InfraProvider> LifecycleProvider<P> {
    /// `installed_by` tells users what installs the provider's CRDs when they are missing. The
    /// provider is built when the controllers start, with the manager's client (for provider
    /// kinds of its own) and the process's metrics (so its cloud client can report calls).
    pub fn new(
        name: &'static str,
        installed_by: &'static str,
        factory: impl Fn(kube::Client, Arc<capstan_runtime::metrics::Metrics>) -> P + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            installed_by,
            factory: Box::new(factory),
            poll_interval: None,
            resync_interval: None,
            backoff: None,
            operation_timeout: None,
            companions: Vec::new(),
            companion_crds: Vec::new(),
        }
    }

    /// Another controller that runs with the provider's two and stops with them (e.g. an
    /// in-tree IPAM provider for the provider's own pool kind), needing `crds`.
    pub fn with_companion<F>(
        mut self,
        crds: Vec<RequiredCrd>,
        run: impl Fn(ProviderContext) -> F + Send + Sync + 'static,
    ) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.companions.push(Box::new(move |ctx| Box::pin(run(ctx))));
        self.companion_crds.extend(crds);
        self
    }

    /// How often a provisioned machine is checked against the cloud (default 5 min).
    pub fn with_resync_interval(mut self, interval: Duration) -> Self {
        self.resync_interval = Some(interval);
        self
    }

    /// Bounds of the per-object retry backoff after failures (default 1 s doubling to 5 min, as
    /// CAPI's controllers). Tests that compress cloud latency compress this too.
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff = Some((base, max));
        self
    }

    /// How long a cloud operation may run before it is given up on, reported and the instance
    /// looked at afresh (default 30 min).
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = Some(timeout);
        self
    }

    /// How often in-flight cloud operations are polled (default 2 s).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = Some(interval);
        self
    }
}

impl<P> capstan_runtime::Provider for LifecycleProvider<P>
where
    P: InfraProvider,
    <P::Machine as HasSpec>::Spec: InfraMachineSpec,
    <P::Cluster as HasSpec>::Spec: InfraClusterSpec,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn required_crds(&self) -> Vec<RequiredCrd> {
        let capi = "Cluster API core (`clusterctl init`, or `capstan crds --with-capi-core | kubectl apply -f -` for standalone mode)";
        vec![
            RequiredCrd::new(capstan_api::core::GROUP, capstan_api::core::VERSION, "clusters", capi),
            RequiredCrd::new(capstan_api::core::GROUP, capstan_api::core::VERSION, "machines", capi),
            RequiredCrd::new(
                &P::Cluster::group(&()),
                &P::Cluster::version(&()),
                &P::Cluster::plural(&()),
                self.installed_by,
            ),
            RequiredCrd::new(
                &P::Machine::group(&()),
                &P::Machine::version(&()),
                &P::Machine::plural(&()),
                self.installed_by,
            ),
        ]
        .into_iter()
        .chain(self.companion_crds.iter().cloned())
        .collect()
    }

    fn run(&self, ctx: ProviderContext) -> BoxFuture<'static, Result<(), BoxError>> {
        let provider = Arc::new((self.factory)(ctx.client.clone(), ctx.metrics.clone()));
        let name = self.name;
        let poll = self.poll_interval;
        let resync = self.resync_interval;
        let backoff = self.backoff;
        let operation_timeout = self.operation_timeout;
        let companions: Vec<_> = self.companions.iter().map(|run| run(ctx.clone())).collect();
        Box::pin(async move {
            let (machines, machine_writer) = reflector::store();
            let (clusters, cluster_writer) = reflector::store();
            let (infra_clusters, infra_cluster_writer) = reflector::store();
            let stores = Stores {
                machines,
                clusters,
                infra_clusters: infra_clusters.clone(),
            };
            let mut state = Ctx::new(provider, name, ctx.client.clone(), ctx.metrics.clone(), stores);
            if let Some(p) = poll {
                state.poll_interval = p;
            }
            if let Some(r) = resync {
                state.resync_interval = r;
            }
            if let Some(t) = operation_timeout {
                state.operation_timeout = t;
            }
            if let Some((base, max)) = backoff {
                state.backoff = capstan_runtime::backoff::FailureBackoff::new(base, max);
            }
            let state = Arc::new(state);
            let machines = run_machines::<P>(&ctx, state.clone(), name, machine_writer, cluster_writer);
            let clusters = run_clusters::<P>(&ctx, state, name, infra_clusters, infra_cluster_writer);
            futures::join!(machines, clusters, futures::future::join_all(companions));
            Ok(())
        })
    }
}

async fn run_machines<P>(
    ctx: &ProviderContext,
    state: Arc<Ctx<P>>,
    name: &'static str,
    machine_writer: reflector::store::Writer<Machine>,
    cluster_writer: reflector::store::Writer<Cluster>,
) where
    P: InfraProvider,
    <P::Machine as HasSpec>::Spec: InfraMachineSpec,
    <P::Cluster as HasSpec>::Spec: InfraClusterSpec,
{
    let controller = P::Machine::kind(&()).to_lowercase();
    let kind = P::Machine::kind(&()).to_string();
    let shutdown = ctx.shutdown.clone();
    let controller_ = Controller::new(
        ctx.scope.api::<P::Machine>(ctx.client.clone()),
        ctx.scope.watcher_config(),
    )
    .with_config(ctx.concurrency.controller_config(&controller));
    // A Cluster being paused, unpaused or provisioned wakes every InfraMachine labelled with it;
    // its status churn (conditions, replica counts) wakes nobody.
    let store = controller_.store();
    let cluster_changes = ChangeFilter::new(cluster_fields);
    let machine_changes = ChangeFilter::new(machine_fields);
    // These two watches also fill the Machine and Cluster stores the reconciles read from.
    let clusters = reflector(
        cluster_writer,
        watcher(ctx.scope.api::<Cluster>(ctx.client.clone()), ctx.scope.watcher_config()),
    )
    .default_backoff()
    .touched_objects();
    let machines = reflector(
        machine_writer,
        watcher(ctx.scope.api::<Machine>(ctx.client.clone()), ctx.scope.watcher_config()),
    )
    .default_backoff()
    .touched_objects();
    controller_
        .watches_stream(
            clusters,
            move |c: Cluster| {
                if !cluster_changes.changed(&c) {
                    return Vec::new();
                }
                let (name, ns) = (c.name_any(), c.namespace());
                store
                    .state()
                    .into_iter()
                    .filter(|m| m.namespace() == ns && m.labels().get(LABEL_CLUSTER_NAME) == Some(&name))
                    .map(|m| ObjectRef::from_obj(m.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        // The owner Machine gaining its data secret, or being paused, must wake its InfraMachine.
        .watches_stream(
            machines,
            move |m: Machine| {
                (m.spec.infrastructure_ref.kind == kind && machine_changes.changed(&m))
                    .then(|| ObjectRef::new(&m.spec.infrastructure_ref.name).within(&m.namespace().unwrap_or_default()))
            },
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(
            move |obj, state: Arc<Ctx<P>>| {
                let controller = controller.clone();
                async move {
                    let span =
                        info_span!("reconcile", provider = name, controller = %controller, object = %ObjectKey::of(obj.as_ref()));
                    let timer = Timer::start();
                    let result = crate::machine::reconcile::<P>(obj, state.clone())
                        .instrument(span)
                        .await;
                    state.metrics.observe_reconcile(
                        &controller,
                        timer.elapsed(),
                        result.as_ref().err().map(Error::reason),
                    );
                    result
                }
            },
            |obj: Arc<P::Machine>, err: &Error, state: Arc<Ctx<P>>| error_policy(&ObjectKey::of(obj.as_ref()), err, &state),
            state,
        )
        .for_each(|_| async {})
        .await;
}

async fn run_clusters<P>(
    ctx: &ProviderContext,
    state: Arc<Ctx<P>>,
    name: &'static str,
    store: reflector::Store<P::Cluster>,
    writer: reflector::store::Writer<P::Cluster>,
) where
    P: InfraProvider,
    <P::Cluster as HasSpec>::Spec: InfraClusterSpec,
{
    let controller = P::Cluster::kind(&()).to_lowercase();
    let kind = P::Cluster::kind(&()).to_string();
    let shutdown = ctx.shutdown.clone();
    let cluster_changes = ChangeFilter::new(cluster_fields);
    // The InfraCluster watch also fills the store InfraMachine reconciles read their cluster from.
    let infra_clusters = reflector(
        writer,
        watcher(
            ctx.scope.api::<P::Cluster>(ctx.client.clone()),
            ctx.scope.watcher_config(),
        ),
    )
    .default_backoff()
    .touched_objects();
    Controller::for_stream(infra_clusters, store)
    .with_config(ctx.concurrency.controller_config(&controller))
    .watches(
        ctx.scope.api::<Cluster>(ctx.client.clone()),
        ctx.scope.watcher_config(),
        move |c: Cluster| {
            let r = c.spec.infrastructure_ref.as_ref()?;
            (r.kind == kind && cluster_changes.changed(&c))
                .then(|| ObjectRef::new(&r.name).within(&c.namespace().unwrap_or_default()))
        },
    )
    .graceful_shutdown_on(async move { shutdown.cancelled().await })
    .run(
        move |obj, state: Arc<Ctx<P>>| {
            let controller = controller.clone();
            async move {
                let span =
                    info_span!("reconcile", provider = name, controller = %controller, object = %ObjectKey::of(obj.as_ref()));
                let timer = Timer::start();
                let result = crate::cluster::reconcile::<P>(obj, state.clone())
                    .instrument(span)
                    .await;
                state
                    .metrics
                    .observe_reconcile(&controller, timer.elapsed(), result.as_ref().err().map(Error::reason));
                result
            }
        },
        |obj: Arc<P::Cluster>, err: &Error, state: Arc<Ctx<P>>| error_policy(&ObjectKey::of(obj.as_ref()), err, &state),
        state,
    )
    .for_each(|_| async {})
    .await;
}

/// What the infrastructure controllers read of a Cluster: a change elsewhere wakes nothing.
fn cluster_fields(c: &Cluster) -> (bool, bool, Option<String>, bool, Option<ApiEndpoint>) {
    (
        c.is_paused(),
        c.annotations().contains_key(capstan_api::contract::ANNOTATION_PAUSED),
        c.spec.infrastructure_ref.as_ref().map(|r| r.name.clone()),
        c.infrastructure_provisioned(),
        c.spec.control_plane_endpoint.clone(),
    )
}

/// What the InfraMachine controller reads of its owner Machine.
fn machine_fields(m: &Machine) -> (String, String, Option<String>, String, Option<String>, bool, bool) {
    (
        m.spec.infrastructure_ref.kind.clone(),
        m.spec.infrastructure_ref.name.clone(),
        m.data_secret_name().map(str::to_string),
        m.spec.cluster_name.clone(),
        m.spec.failure_domain.clone(),
        m.is_control_plane(),
        m.annotations().contains_key(capstan_api::contract::ANNOTATION_PAUSED),
    )
}

fn error_policy<P: InfraProvider>(key: &ObjectKey, err: &Error, state: &Ctx<P>) -> Action {
    let delay = state.backoff.next_delay(key);
    warn!(object = %key, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
