//! Assembles a service from its parts and runs it: command processor, policies, reactors,
//! projections and the HTTP API, each loop supervised (restarted with back-off on error,
//! which also rebuilds its state from the log).
use crate::{
    codec::{CodecError, EventCodec},
    db::{self, DbError},
    decider::Decider,
    command_bus::CommandBus,
    http::{AppState, ProjectionProgress, QueryRoutes, ReadDb},
    kafka::KafkaSetupError,
    policy::Policy,
    projection_runner::{Progress, Projection, ProjectionRunner},
    replay::{self, ReplayError},
    subscription::{EventHandler, PolicyHandler, Subscription},
    command_processor::CommandProcessor,
    topology,
};
use axum::Router;
use contracts::Stream;
use futures::future::BoxFuture;
use sqlx::{AnyPool, migrate::Migrator};
use std::{collections::HashMap, fmt::Display, future::Future, sync::Arc, time::Duration};

/// Settings every service reads from the environment.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub name: &'static str,
    pub kafka_brokers: String,
    pub schema_registry_url: String,
    pub database_url: String,
    pub http_addr: String,
    pub run_dir: String,
    pub partitions: i32,
}

impl ServiceConfig {
    /// `KAFKA_BROKERS`, `SCHEMA_REGISTRY_URL`, `DATABASE_URL`, `HTTP_ADDR`, `RUN_DIR`, `PARTITIONS`.
    pub fn from_env(name: &'static str, default_port: u16) -> Self {
        let var = |key: &str, default: String| std::env::var(key).ok().filter(|v| !v.is_empty()).unwrap_or(default);
        let run_dir = var("RUN_DIR", "run".into());
        ServiceConfig {
            name,
            kafka_brokers: var("KAFKA_BROKERS", "127.0.0.1:9092".into()),
            schema_registry_url: var("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081".into()),
            database_url: var("DATABASE_URL", format!("sqlite://{run_dir}/data/{name}.db?mode=rwc")),
            http_addr: var("HTTP_ADDR", format!("127.0.0.1:{default_port}")),
            partitions: var("PARTITIONS", topology::DEFAULT_PARTITIONS.to_string()).parse().unwrap_or(topology::DEFAULT_PARTITIONS),
            run_dir,
        }
    }
}

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

pub struct Service {
    pub config: ServiceConfig,
    pub pool: AnyPool,
    mode: Mode,
    tasks: Vec<Task>,
    routes: QueryRoutes,
    progress: HashMap<&'static str, Progress>,
    projections: Vec<Arc<ProjectionRunner>>,
}

impl Service {
    /// Reads the config, sets up logging, opens and migrates the database, makes sure every
    /// topic exists.
    pub async fn start(name: &'static str, default_port: u16, migrator: &'static Migrator) -> Result<Self, ServiceError> {
        let mode = <Cli as clap::Parser>::parse().command.unwrap_or(Mode::Serve);
        crate::telemetry::init(name);
        crate::metrics::install(name);
        let config = ServiceConfig::from_env(name, default_port);
        tracing::info!(?config, "starting");
        let pool = db::connect(&config.database_url, Some(migrator)).await?;
        topology::ensure_all(&config.kafka_brokers, config.partitions).await?;
        Ok(Service { config, pool, mode, tasks: Vec::new(), routes: Router::new(), progress: HashMap::new(), projections: Vec::new() })
    }

    /// The service's aggregate: its command processor (the single writer of its stream).
    pub fn aggregate<D: Decider>(&mut self, decider: D) -> Result<&mut Self, ServiceError> {
        let codec = Arc::new(EventCodec::<D::Stream>::new(&self.config.schema_registry_url)?);
        let processor = Arc::new(CommandProcessor::new(Arc::new(decider), codec, &self.config.kafka_brokers, self.config.name));
        let label = format!("{} command processor", <D::Stream as Stream>::COMMANDS_TOPIC);
        self.tasks.push(Box::pin(supervise(label, move || {
            let processor = processor.clone();
            async move { processor.run().await }
        })));
        // Every aggregate's commands can be looked up: `GET /commands/{command_id}`.
        self.projection(crate::command_outcomes::projection::<D::Stream>)?;
        self.routes(crate::command_outcomes::routes());
        Ok(self)
    }

    /// A policy: another stream's events become commands for this service's aggregate.
    pub fn policy<P: Policy>(&mut self, policy: P) -> Result<&mut Self, ServiceError> {
        self.reactor::<P::Source, _>(PolicyHandler(policy))
    }

    /// Any handler of a stream's events (policies, side effects such as sending notifications).
    pub fn reactor<S: Stream, H: EventHandler<S>>(&mut self, handler: H) -> Result<&mut Self, ServiceError> {
        let codec = Arc::new(EventCodec::<S>::new(&self.config.schema_registry_url)?);
        let label = format!("{} reactor {}", S::EVENTS_TOPIC, handler.name());
        let subscription = Arc::new(Subscription::new(handler, codec, &self.config.kafka_brokers, self.config.name));
        self.tasks.push(Box::pin(supervise(label, move || {
            let subscription = subscription.clone();
            async move { subscription.run().await }
        })));
        Ok(self)
    }

    /// A read model. `build` gets the registry URL to decode its source streams with.
    pub fn projection(&mut self, build: impl FnOnce(&str) -> Result<Projection, CodecError>) -> Result<&mut Self, ServiceError> {
        let runner = Arc::new(ProjectionRunner::new(build(&self.config.schema_registry_url)?, self.pool.clone(), &self.config.kafka_brokers));
        self.progress.insert(runner.name(), runner.progress());
        self.projections.push(runner.clone());
        let label = format!("projection {}", runner.name());
        self.tasks.push(Box::pin(supervise(label, move || {
            let runner = runner.clone();
            async move { runner.run().await }
        })));
        Ok(self)
    }

    pub fn routes(&mut self, routes: QueryRoutes) -> &mut Self {
        self.routes = std::mem::take(&mut self.routes).merge(routes);
        self
    }

    /// Runs every loop and serves HTTP until SIGINT/SIGTERM (or replays, when asked to).
    pub async fn run(self) -> Result<(), ServiceError> {
        if let Mode::Replay { verify, projections } = self.mode.clone() {
            let outcome = self.replay(verify, &projections).await;
            crate::telemetry::shutdown();
            return outcome;
        }
        let name = self.config.name;
        let readiness = crate::health::Readiness::new(name, &self.config.schema_registry_url, self.progress.keys().copied().collect());
        let state = AppState {
            db: ReadDb(self.pool.clone()),
            progress: ProjectionProgress(Arc::new(self.progress)),
            commands: CommandBus::new(&self.config.kafka_brokers).map_err(KafkaSetupError::from)?,
        };
        let app = Router::new()
            .merge(crate::health::routes(readiness))
            .merge(self.routes)
            .layer(axum::middleware::from_fn(crate::metrics::track_http))
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
                crate::metrics::upkeep();
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|source| ServiceError::Http { addr, source })?;
        tracing::info!("stopped");
        crate::telemetry::shutdown();
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
        let backend = db::Backend::of(&self.config.database_url);
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

/// Runs `make()` again whenever it fails, with capped exponential back-off.
async fn supervise<F, Fut, E>(label: String, make: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Display,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        let started = tokio::time::Instant::now();
        match make().await {
            Ok(()) => tracing::warn!(%label, "loop ended; restarting"),
            Err(error) => tracing::error!(%label, %error, "loop failed; restarting"),
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(200);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
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
