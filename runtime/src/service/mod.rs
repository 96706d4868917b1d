//! Assembles a service from its parts and runs it: command processor, policies, reactors,
//! deadlines, projections and the HTTP API, each loop supervised (restarted with back-off on error,
//! which also rebuilds its state from the log).
mod config;
mod list;
mod stop;

pub use config::{ServiceConfig, UnknownService};
pub use list::{ServiceEntry, service, services};

use crate::{
    decider::Decider,
    engine::{
        AcceptedHistory,
        command_processor::CommandProcessor,
        deadlines::{DeadlineWatch, Deadlines},
        pause::wait_while_paused,
        subscription::{EventHandler, PolicyHandler, Subscription},
        supervise::{Loops, supervise},
    },
    http::{
        ApiRoutes, AppState, CommandBus, ProjectionProgress, ReadDb,
        access::{self, AccessConfigError, AccessPolicy},
        middleware, openapi, ops,
    },
    kafka::{self, CodecError, EventCodec, KafkaSetupError, Pace},
    observe::{metrics, telemetry},
    policy::Policy,
    projection::{
        Progress, Projection, command_outcomes,
        replay::{self, ReplayError},
        runner::ProjectionRunner,
        store::{self, DbError},
    },
    shared::LoopKind,
    snapshot::SnapshotStore,
};
use axum::Router;
use contracts::Stream;
use futures::future::BoxFuture;
use sqlx::{AnyPool, migrate::Migrator};
use std::{collections::HashMap, sync::Arc, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Kafka(#[from] KafkaSetupError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("http {addr}: {source}")]
    Http { addr: String, source: std::io::Error },
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("no projection named {0} (this service has: {1})")]
    UnknownProjection(String, String),
    #[error(transparent)]
    UnknownService(#[from] UnknownService),
    #[error("access control: {0}")]
    Access(#[from] AccessConfigError),
}

/// The service binary's command line: `<service>` serves; `<service> replay [--verify]`
/// rebuilds its read models from the topics, next to a running instance or without one.
#[derive(Debug, clap::Parser)]
#[command(about = "An order-system service: serves its aggregate, policies, read models and HTTP API (default), or replays its read models")]
struct Cli {
    #[command(subcommand)]
    command: Option<Mode>,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum Mode {
    /// Run the service (the default).
    Serve,
    /// Rebuild the read models from offset 0 of every topic they read, into fresh tables that
    /// replace the live ones in one transaction (a running instance keeps serving meanwhile);
    /// prints events/s and the duration.
    Replay {
        /// Rebuild into scratch tables up to where the live tables are and compare checksums
        /// instead of swapping; exits non-zero naming the first differing table and key.
        #[arg(long)]
        verify: bool,
        /// Only these projections (repeatable); all of the service's by default.
        #[arg(long = "projection", value_name = "NAME")]
        projections: Vec<String>,
    },
}

type Task = BoxFuture<'static, ()>;

/// Largest HTTP request body a service reads: 64 KiB, far above any command (an order of 100
/// lines is under 20 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct Service {
    pub config: ServiceConfig,
    pub pool: AnyPool,
    version: &'static str,
    mode: Mode,
    tasks: Vec<Task>,
    routes: ApiRoutes,
    progress: HashMap<&'static str, Progress>,
    projections: Vec<Arc<ProjectionRunner>>,
    /// Every supervised loop's state, for `/ready`.
    loops: Loops,
    access: AccessPolicy,
    /// One per stream, shared by every loop of the service that reads its snapshots, so that
    /// loops starting together share one read of a partition's snapshot.
    snapshot_stores: std::sync::Mutex<HashMap<&'static str, Arc<SnapshotStore>>>,
}

impl Service {
    /// Reads the config, sets up logging, opens and migrates the database, makes sure every
    /// topic exists. `name` and `version` are the service crate's (`env!("CARGO_PKG_NAME")`,
    /// `env!("CARGO_PKG_VERSION")`): the name is its line in `services.tsv` (its default port)
    /// and, with the version, the title of its OpenAPI document.
    pub async fn start(name: &'static str, version: &'static str, migrator: &'static Migrator) -> Result<Self, ServiceError> {
        let mode = <Cli as clap::Parser>::parse().command.unwrap_or(Mode::Serve);
        telemetry::init(name);
        metrics::install(name);
        let config = ServiceConfig::from_env(name)?;
        let access = AccessPolicy::from_env()?;
        tracing::info!(?config, token = access.token.is_some(), token_for_reads = access.reads_need_token, "starting");
        let pool = store::connect(&config.database_url, Some(migrator)).await?;
        kafka::ensure_all(&config.kafka_brokers, config.partitions).await?;
        kafka::verify_partition_counts(&config.kafka_brokers).await?;
        Ok(Service {
            config,
            pool,
            version,
            mode,
            tasks: Vec::new(),
            routes: ApiRoutes::new(),
            progress: HashMap::new(),
            projections: Vec::new(),
            loops: Loops::default(),
            access,
            snapshot_stores: Default::default(),
        })
    }

    /// The service's aggregate: its command processor (the single writer of its stream).
    pub fn aggregate<D: Decider>(&mut self, decider: D) -> Result<&mut Self, ServiceError> {
        let codec = Arc::new(EventCodec::<D::Stream>::new(&self.config.schema_registry_url)?);
        let snapshots = self.snapshot_store(<D::Stream as Stream>::NAME)?;
        let processor = Arc::new(CommandProcessor::new(Arc::new(decider), codec, snapshots, &self.config.kafka_brokers, self.config.name));
        let label = format!("{} command processor", <D::Stream as Stream>::COMMANDS_TOPIC);
        self.loops.register(&label, LoopKind::Command);
        self.tasks.push(Box::pin(supervise(label, LoopKind::Command, self.loops.clone(), move || {
            let processor = processor.clone();
            async move { processor.run().await }
        })));
        // Every aggregate's commands can be looked up: `GET /commands/{command_id}`.
        self.projection(command_outcomes::projection::<D::Stream>)?;
        Ok(self)
    }

    /// The snapshots of `stream`'s writer: written by its command processor, read by it and by
    /// every subscription to the stream.
    fn snapshot_store(&self, stream: &'static str) -> Result<Arc<SnapshotStore>, ServiceError> {
        let mut stores = self.snapshot_stores.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(store) = stores.get(stream) {
            return Ok(store.clone());
        }
        let store = Arc::new(SnapshotStore::new(stream, &self.config.kafka_brokers, &self.config.schema_registry_url).map_err(CodecError::from)?);
        stores.insert(stream, store.clone());
        Ok(store)
    }

    /// The accepted history of `S`'s partitions, for a loop of the service's own that reads the
    /// stream from somewhere in the middle (from the writer's snapshots and the log after them).
    pub fn accepted_history<S: Stream>(&self) -> Result<AcceptedHistory<S>, ServiceError> {
        let codec = Arc::new(EventCodec::<S>::new(&self.config.schema_registry_url)?);
        Ok(AcceptedHistory::new(codec, self.snapshot_store(S::NAME)?))
    }

    /// A policy: another stream's events become commands for this service's aggregate. A step
    /// of the saga: it follows its stream at [`Pace::Saga`].
    pub fn policy<P: Policy>(&mut self, policy: P) -> Result<&mut Self, ServiceError> {
        self.subscribe::<P::Source, _>(PolicyHandler(policy), Pace::Saga)
    }

    /// A policy whose commands nothing in the saga waits for (notify-svc's: a notification is a
    /// side effect of the saga, not a step of it): it follows its stream at [`Pace::Background`],
    /// in fewer, longer fetches, which on Nisshi means fewer storage queries per order.
    pub fn background_policy<P: Policy>(&mut self, policy: P) -> Result<&mut Self, ServiceError> {
        self.subscribe::<P::Source, _>(PolicyHandler(policy), Pace::Background)
    }

    /// A handler of a stream's events for side effects (sending notifications, metrics), which
    /// nothing in the saga waits on: it follows its stream at [`Pace::Background`].
    pub fn reactor<S: Stream, H: EventHandler<S>>(&mut self, handler: H) -> Result<&mut Self, ServiceError> {
        self.subscribe::<S, _>(handler, Pace::Background)
    }

    fn subscribe<S: Stream, H: EventHandler<S>>(&mut self, handler: H, pace: Pace) -> Result<&mut Self, ServiceError> {
        let codec = Arc::new(EventCodec::<S>::new(&self.config.schema_registry_url)?);
        let snapshots = self.snapshot_store(S::NAME)?;
        let label = format!("{} reactor {}", S::EVENTS_TOPIC, handler.name());
        let subscription = Arc::new(Subscription::new(handler, codec, snapshots, &self.config.kafka_brokers, self.config.name, pace));
        self.loops.register(&label, LoopKind::Policy);
        self.tasks.push(Box::pin(supervise(label, LoopKind::Policy, self.loops.clone(), move || {
            let subscription = subscription.clone();
            async move { subscription.run().await }
        })));
        Ok(self)
    }

    /// The deadlines of this service's aggregate: a wait that outlives its limit becomes the
    /// aggregate's own timeout command (see [`Deadlines`]). Supervised like a policy: it shows
    /// as one in `/ready` and pauses with them. Its own timer fires the deadlines, so it follows
    /// its stream at [`Pace::Background`].
    pub fn deadlines<T: Deadlines>(&mut self, deadlines: T) -> Result<&mut Self, ServiceError> {
        type StreamOf<T> = <<T as Deadlines>::Decider as Decider>::Stream;
        let codec = Arc::new(EventCodec::<StreamOf<T>>::new(&self.config.schema_registry_url)?);
        let label = format!("{} deadlines {}", StreamOf::<T>::EVENTS_TOPIC, T::NAME);
        let snapshots = self.snapshot_store(<StreamOf<T> as Stream>::NAME)?;
        let watch = Arc::new(DeadlineWatch::new(deadlines, codec, snapshots, &self.config.kafka_brokers, self.config.name));
        self.loops.register(&label, LoopKind::Policy);
        self.tasks.push(Box::pin(supervise(label, LoopKind::Policy, self.loops.clone(), move || {
            let watch = watch.clone();
            async move { watch.run().await }
        })));
        Ok(self)
    }

    /// A consuming loop of the service's own that none of the above fits (notify-svc's delivery
    /// of notifications), run like the runtime's loops: supervised (`make` builds a fresh run
    /// after every failure, which rebuilds what it keeps from the log), and shown in `/ready`
    /// under `label` as a reactor (kind `policy`).
    pub fn background_loop<F, Fut, E>(&mut self, label: &str, make: F) -> &mut Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        self.loops.register(label, LoopKind::Policy);
        self.tasks.push(Box::pin(supervise(label.to_string(), LoopKind::Policy, self.loops.clone(), make)));
        self
    }

    /// Returns at once, unless the operator paused the reactors (`/admin/pause?kind=policy`):
    /// then when they are resumed. A [`Service::background_loop`] waits on it before each step,
    /// so it pauses with the reactors it is shown among.
    pub async fn wait_while_reactors_paused() {
        wait_while_paused(LoopKind::Policy).await;
    }

    /// A read model. `build` gets the registry URL to decode its source streams with.
    pub fn projection(&mut self, build: impl FnOnce(&str) -> Result<Projection, CodecError>) -> Result<&mut Self, ServiceError> {
        let runner = Arc::new(ProjectionRunner::new(
            build(&self.config.schema_registry_url)?,
            self.pool.clone(),
            store::Backend::of(&self.config.database_url),
            &self.config.kafka_brokers,
        ));
        self.progress.insert(runner.name(), runner.progress());
        self.projections.push(runner.clone());
        let label = format!("projection {}", runner.name());
        self.loops.register(&label, LoopKind::Projection);
        self.tasks.push(Box::pin(supervise(label, LoopKind::Projection, self.loops.clone(), move || {
            let runner = runner.clone();
            async move { runner.run().await }
        })));
        Ok(self)
    }

    /// Read and write routes, documented by their handlers' annotations: the service serves
    /// them with the runtime's shared routes and `GET /openapi.json` over all of them.
    pub fn routes(&mut self, routes: ApiRoutes) -> &mut Self {
        self.routes = std::mem::take(&mut self.routes).merge(routes);
        self
    }

    /// Runs every loop and serves HTTP until SIGINT/SIGTERM (or replays, when asked to).
    pub async fn run(self) -> Result<(), ServiceError> {
        if let Mode::Replay { verify, projections } = self.mode.clone() {
            let outcome = self.replay(verify, &projections).await;
            telemetry::shutdown();
            return outcome;
        }
        let name = self.config.name;
        let readiness = ops::Readiness::new(name, &self.config.schema_registry_url, self.progress.keys().copied().collect(), self.loops.clone());
        let state = AppState {
            db: ReadDb(self.pool.clone()),
            progress: ProjectionProgress(Arc::new(self.progress)),
            commands: CommandBus::new(&self.config.kafka_brokers).map_err(KafkaSetupError::from)?,
        };
        let app = Router::new()
            .merge(ops::routes(readiness))
            .merge(openapi::documented(name, self.version, self.routes))
            // Commands are small; a larger body is refused (413) before it is buffered whole.
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(axum::middleware::from_fn_with_state(Arc::new(self.access), access::guard))
            // Outermost: refused requests are counted and traced too.
            .layer(axum::middleware::from_fn(middleware::track_http))
            .with_state(state);
        let addr = self.config.http_addr.clone();
        let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|source| ServiceError::Http { addr: addr.clone(), source })?;
        tracing::info!(%addr, "http listening");
        for task in self.tasks {
            tokio::spawn(task);
        }
        tokio::spawn(async {
            let mut ticker = tokio::time::interval(Duration::from_secs(5));
            loop {
                ticker.tick().await;
                metrics::upkeep();
            }
        });
        // The peer address tells `/admin` callers on loopback from the others.
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|source| ServiceError::Http { addr, source })?;
        tracing::info!("stopped");
        telemetry::shutdown();
        stop::exit_unless_closed_within(stop::CLOSE_GRACE);
        Ok(())
    }
}

impl Service {
    /// Rebuilds (or verifies) the chosen projections one after the other, printing a report
    /// for each and a total.
    async fn replay(&self, verify: bool, only: &[String]) -> Result<(), ServiceError> {
        let known: Vec<&str> = self.projections.iter().map(|p| p.name()).collect();
        if let Some(unknown) = only.iter().find(|name| !known.contains(&name.as_str())) {
            return Err(ServiceError::UnknownProjection(unknown.clone(), known.join(", ")));
        }
        let chosen = self.projections.iter().filter(|p| only.is_empty() || only.iter().any(|name| name == p.name()));
        let backend = store::Backend::of(&self.config.database_url);
        let brokers = &self.config.kafka_brokers;
        let started = std::time::Instant::now();
        let mut events = 0;
        let mut first_difference = None;
        for runner in chosen {
            if verify {
                let report = replay::verify(runner.projection(), &self.pool, backend, brokers).await?;
                print!("{report}");
                events += report.events;
                first_difference = first_difference.or(report.result().err());
            } else {
                let report = replay::rebuild(runner.projection(), &self.pool, backend, brokers).await?;
                println!("{report}");
                events += report.events;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{} {}: {events} events in {seconds:.2} s ({:.0} events/s)",
            if verify { "verify" } else { "replay" },
            self.config.name,
            events as f64 / seconds.max(1e-9)
        );
        match first_difference {
            Some(difference) => Err(difference.into()),
            None => Ok(()),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
