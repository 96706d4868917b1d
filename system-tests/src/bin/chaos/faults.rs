//! The faults of a chaos run: a schedule drawn from the run's seed (printed before the run, so a
//! failing run can be repeated), and the injector that carries it out against the real
//! processes: kill -9 of services and of the broker, registry and PostgreSQL restarts, network
//! faults through the proxy in front of the broker, a stalled process and an operator pause.
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use std::{
    fmt,
    path::PathBuf,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};
use system_tests::{Stack, fault_proxy::FaultProxy, infra, services};

/// Longer than the services' consumer session timeout (`session.timeout.ms` 10 s), so a stalled
/// member is evicted from its groups and must rejoin.
const STALL: Duration = Duration::from_secs(13);

#[derive(Debug, Clone)]
pub enum Fault {
    KillService {
        service: &'static str,
        down: Duration,
    },
    KillBroker {
        down: Duration,
    },
    RestartRegistry {
        down: Duration,
    },
    RestartPostgres,
    /// Every open connection to the broker is reset.
    Sever,
    /// Connections to the broker are reset and refused for a while.
    Refuse {
        period: Duration,
    },
    /// Every chunk to and from the broker is held back by `latency` for a while.
    Delay {
        latency: Duration,
        period: Duration,
    },
    /// SIGSTOP, then SIGCONT after `period`: heartbeats stop, the member is evicted.
    Stall {
        service: &'static str,
        period: Duration,
    },
    /// `POST /admin/pause`, then `/admin/resume` after `period`.
    Pause {
        service: &'static str,
        period: Duration,
    },
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::KillService { .. } => "kill -9 service",
            Fault::KillBroker { .. } => "kill -9 broker",
            Fault::RestartRegistry { .. } => "registry restart",
            Fault::RestartPostgres => "PostgreSQL restart",
            Fault::Sever => "connections reset",
            Fault::Refuse { .. } => "connections refused",
            Fault::Delay { .. } => "network delay",
            Fault::Stall { .. } => "stalled process (evicted)",
            Fault::Pause { .. } => "operator pause",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillService { service, down } => write!(f, "kill -9 {service}, restart after {down:.1?}"),
            Fault::KillBroker { down } => write!(f, "kill -9 the broker, restart on the same storage after {down:.1?}"),
            Fault::RestartRegistry { down } => write!(f, "kill -9 the schema registry, restart after {down:.1?}"),
            Fault::RestartPostgres => write!(f, "restart PostgreSQL (immediate shutdown)"),
            Fault::Sever => write!(f, "reset every connection to the broker"),
            Fault::Refuse { period } => write!(f, "reset and refuse connections to the broker for {period:.1?}"),
            Fault::Delay { latency, period } => write!(f, "delay broker traffic by {latency:.0?} for {period:.1?}"),
            Fault::Stall { service, period } => write!(f, "SIGSTOP {service} for {period:.1?}, then SIGCONT"),
            Fault::Pause { service, period } => write!(f, "POST {service} /admin/pause for {period:.1?}, then /admin/resume"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Planned {
    /// Since the start of the load.
    pub at: Duration,
    pub fault: Fault,
}

/// One of each kind of fault in the middle of the run, and a service killed every 4 to 9 s
/// throughout, all at times drawn from `seed`.
pub fn schedule(seed: u64, load: Duration, postgres: bool) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let services = services();
    let service = |rng: &mut StdRng| *services.choose(rng).expect("services");
    let at = |rng: &mut StdRng, from: f64, to: f64| load.mul_f64(rng.random_range(from..to));
    let seconds = |rng: &mut StdRng, from: f64, to: f64| Duration::from_secs_f64(rng.random_range(from..to));
    let mut plan = vec![
        Planned { at: at(&mut rng, 0.10, 0.20), fault: Fault::Sever },
        Planned { at: at(&mut rng, 0.20, 0.30), fault: Fault::RestartRegistry { down: seconds(&mut rng, 1.0, 3.0) } },
        Planned { at: at(&mut rng, 0.30, 0.40), fault: Fault::Delay { latency: seconds(&mut rng, 0.1, 0.4), period: Duration::from_secs(5) } },
        Planned { at: at(&mut rng, 0.40, 0.50), fault: Fault::KillBroker { down: seconds(&mut rng, 0.0, 3.0) } },
        Planned { at: at(&mut rng, 0.50, 0.55), fault: Fault::Refuse { period: seconds(&mut rng, 2.0, 4.0) } },
        Planned { at: at(&mut rng, 0.55, 0.65), fault: Fault::Stall { service: service(&mut rng), period: STALL } },
        Planned { at: at(&mut rng, 0.75, 0.85), fault: Fault::Pause { service: service(&mut rng), period: Duration::from_secs(5) } },
        Planned { at: at(&mut rng, 0.85, 0.95), fault: Fault::Sever },
    ];
    if postgres {
        plan.push(Planned { at: at(&mut rng, 0.65, 0.75), fault: Fault::RestartPostgres });
    }
    let mut next = Duration::from_secs(2);
    while next + Duration::from_secs(2) < load {
        plan.push(Planned { at: next, fault: Fault::KillService { service: service(&mut rng), down: seconds(&mut rng, 0.0, 3.0) } });
        next += seconds(&mut rng, 4.0, 9.0);
    }
    plan.sort_by_key(|planned| planned.at);
    plan
}

/// What was done, when (since the start of the load) and how long it took until the fault was
/// over (the process back and healthy, the network whole again).
#[derive(Debug, Clone)]
pub struct Injected {
    pub at: Duration,
    pub fault: Fault,
    pub took: Duration,
}

/// The processes the faults act on, owned by the injector while it runs.
pub struct Injector {
    pub stack: Arc<Stack>,
    pub broker: infra::Broker,
    pub registry: infra::Registry,
    pub proxy: Arc<FaultProxy>,
    /// A script that restarts the read models' PostgreSQL server.
    pub postgres_restart: Option<PathBuf>,
    /// For the operator pause's HTTP calls from this (blocking) thread.
    pub runtime: tokio::runtime::Handle,
}

impl Injector {
    /// Carries out `plan` in order, each fault at its time or, when the previous one ran late,
    /// right after it. Blocking: run it on a thread of its own.
    pub fn run(mut self, plan: &[Planned], start: Instant) -> (Self, Vec<Injected>) {
        let mut injected = Vec::new();
        for planned in plan {
            if let Some(wait) = (start + planned.at).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let at = start.elapsed();
            println!("[chaos] t={:>6.1}s  {}", at.as_secs_f64(), planned.fault);
            let began = Instant::now();
            self.inject(&planned.fault);
            injected.push(Injected { at, fault: planned.fault.clone(), took: began.elapsed() });
        }
        (self, injected)
    }

    fn inject(&mut self, fault: &Fault) {
        match fault {
            Fault::KillService { service, down } => {
                self.stack.kill(service);
                std::thread::sleep(*down);
                self.stack.start_service(service);
            }
            Fault::KillBroker { down } => {
                self.broker.stop();
                std::thread::sleep(*down);
                self.broker.start_again();
            }
            Fault::RestartRegistry { down } => {
                self.registry.stop();
                std::thread::sleep(*down);
                self.registry.start_again();
            }
            Fault::RestartPostgres => {
                let script = self.postgres_restart.as_ref().expect("scheduled only with a restart script");
                match Command::new(script).status() {
                    Ok(status) if status.success() => {}
                    other => panic!("restarting PostgreSQL with {}: {other:?}", script.display()),
                }
            }
            Fault::Sever => self.proxy.sever(),
            Fault::Refuse { period } => {
                self.proxy.refuse_for(*period);
                std::thread::sleep(*period);
            }
            Fault::Delay { latency, period } => {
                self.proxy.delay_for(*latency, *period);
                std::thread::sleep(*period);
            }
            Fault::Stall { service, period } => {
                assert!(self.stack.signal(service, libc::SIGSTOP), "{service} is not running");
                std::thread::sleep(*period);
                self.stack.signal(service, libc::SIGCONT);
            }
            Fault::Pause { service, period } => {
                let stack = self.stack.clone();
                let paused = self.runtime.block_on(async move { stack.post(service, "/admin/pause", &serde_json::Value::Null).await.0 });
                assert_eq!(paused, 200, "POST {service} /admin/pause");
                std::thread::sleep(*period);
                let stack = self.stack.clone();
                let resumed = self.runtime.block_on(async move { stack.post(service, "/admin/resume", &serde_json::Value::Null).await.0 });
                assert_eq!(resumed, 200, "POST {service} /admin/resume");
            }
        }
    }
}
