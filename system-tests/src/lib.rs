//! A running copy of the whole system for end-to-end tests: the five service binaries from
//! this workspace's target folder, started against the broker and registry that
//! `scripts/test.sh` provides (`KAFKA_BROKERS`, `SCHEMA_REGISTRY_URL`), each with its own HTTP
//! port and its own read-model database: a SQLite file in a fresh folder (the services' default
//! under `RUN_DIR`), or with `READ_MODEL_DB=postgres` a fresh database on the PostgreSQL server of
//! `TEST_POSTGRES_URL` (`scripts/test.sh` starts one). Commands go in as JSON on the command topics
//! through a producer configured like kcat's (its default partitioner, so the services must
//! forward what lands on the wrong partition); outcomes are read over HTTP only.
//!
//! A scaled stack ([`Stack::start_scaled`]) runs every service N times, as a deployment with N
//! replicas does: each process has its own port and read-model database and its own
//! `SERVICE_INSTANCE` (static consumer-group membership), and they share the broker's consumer
//! groups and the notification sink. Methods that name only a service mean its instance 0.
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
};
use serde_json::Value;
use std::{
    collections::HashMap,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Mutex, mpsc},
    time::{Duration, Instant},
};

/// The system's services, in start order (`services.tsv`).
pub fn services() -> Vec<&'static str> {
    runtime::services().into_iter().map(|service| service.name).collect()
}

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set: run scripts/test.sh"))
}

/// Unique id for this test run, so tests sharing topics never see each other's aggregates.
/// A new folder path for a test's files: under `TEST_RUN_DIR` (the run folder `scripts/test.sh`
/// keeps), else the system's temp folder; unique per call.
pub fn test_dir(name: &str) -> PathBuf {
    std::env::var("TEST_RUN_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir()).join(unique(name))
}

/// For the tests of one test binary that stop and start services of a shared stack: hold it
/// to run one at a time.
pub fn one_at_a_time() -> &'static tokio::sync::Mutex<()> {
    static LOCK: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

pub mod fault_proxy;
pub mod hostile;
pub mod infra;
pub mod otlp;
pub mod shop;

/// Sends `signal` to a child process not reaped yet; false when it could not be sent.
pub fn signal_child(child: &Child, signal: libc::c_int) -> bool {
    // SAFETY: plain kill(2) on our own child's pid, which we have not reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) == 0 }
}

/// Graceful stop of a child: SIGTERM, then waits for it to exit (SIGKILL after 30 s, saying so).
pub fn stop_child(child: &mut Child, name: &str) {
    if let Ok(None) = child.try_wait() {
        signal_child(child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Ok(None) = child.try_wait() {
            if Instant::now() > deadline {
                eprintln!("{name} still running 30 s after SIGTERM: SIGKILL");
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.wait();
}

pub fn free_port() -> u16 {
    // Below the kernel's ephemeral range: a port the kernel hands out for `:0` is free then,
    // but until the process meant for it binds it, any outgoing connection may take it as its
    // local port (a chaos run's broker once found its port taken that way). Ports this process
    // gave out already are skipped, so two callers never get the same one.
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let ephemeral = ephemeral_ports_start().unwrap_or(32768);
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if ephemeral > LOWEST_PORT + 1000 {
        let span = u32::from(ephemeral - LOWEST_PORT);
        let start = (uuid::Uuid::new_v4().as_u128() % u128::from(span)) as u32;
        for step in 0..span {
            let port = LOWEST_PORT + ((start + step) % span) as u16;
            if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.push(port);
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Where `free_port` starts looking.
const LOWEST_PORT: u16 = 10_000;

/// The first port of the kernel's ephemeral range (`ip_local_port_range`).
fn ephemeral_ports_start() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?.split_whitespace().next()?.parse().ok()
}

/// `target/<profile>`, where the workspace's binaries (services, `orderctl`) are.
pub fn target_dir() -> PathBuf {
    // Tests run as target/<profile>/deps/<test>-<hash>, this package's binaries (the chaos
    // run) as target/<profile>/<name>.
    let exe = std::env::current_exe().expect("executable path");
    let folder = exe.parent().expect("target/<profile>");
    if folder.file_name().is_some_and(|name| name == "deps") { folder.parent().expect("target/<profile>") } else { folder }.to_path_buf()
}

/// Children are spawned from one thread that lives as long as the test process, with
/// PDEATHSIG, so services die with the test binary even if a test panics.
struct Spawner(Mutex<mpsc::Sender<(Command, mpsc::Sender<std::io::Result<Child>>)>>);

fn spawner() -> &'static Spawner {
    static SPAWNER: std::sync::OnceLock<Spawner> = std::sync::OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, mpsc::Sender<std::io::Result<Child>>)>();
        std::thread::spawn(move || {
            for (mut command, reply) in rx {
                let _ = reply.send(command.spawn());
            }
        });
        Spawner(Mutex::new(tx))
    })
}

pub(crate) fn spawn(mut command: Command) -> Child {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and only affects the child being set up.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner().0.lock().unwrap_or_else(|p| p.into_inner()).send((command, reply_tx)).expect("spawner thread alive");
    reply_rx.recv().expect("spawner replies").expect("service starts")
}

/// Runs a future to completion on a thread of its own: the stack's API is blocking and may be
/// called from inside a tokio runtime, where `block_on` is not allowed.
fn block_on<T: Send + 'static>(future: impl std::future::Future<Output = T> + Send + 'static) -> std::thread::Result<T> {
    std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(future)).join()
}

/// The stack's own producer, for commands sent as a kcat user would.
fn test_producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // kcat's default: not the Java partitioner; the services must cope.
        .set("partitioner", "consistent_random")
        .create()
        .expect("producer")
}

/// One process of the stack: a service and its instance (0 in an ordinary stack).
type Process = (&'static str, usize);

pub struct Stack {
    pub brokers: String,
    pub registry: String,
    pub dir: PathBuf,
    /// Processes per service; above 1 each gets `SERVICE_INSTANCE` and a database of its own.
    instances: usize,
    ports: HashMap<Process, u16>,
    /// With `READ_MODEL_DB=postgres`: each process's database (name, URL) on the test server.
    postgres: HashMap<Process, (String, String)>,
    children: Mutex<HashMap<Process, Child>>,
    extra_env: Vec<(String, String)>,
    producer: FutureProducer,
    http: reqwest::Client,
}

impl Stack {
    /// Starts all five services and waits until each answers `/health`.
    pub fn start(name: &str, extra_env: &[(&str, &str)]) -> Stack {
        Stack::start_on(name, &env("KAFKA_BROKERS"), &env("SCHEMA_REGISTRY_URL"), &services(), extra_env)
    }

    /// Starts `services` against the given broker and registry (e.g. a test's own, see
    /// [`infra`]) and waits until each answers `/health`.
    pub fn start_on(name: &str, brokers: &str, registry: &str, services: &[&'static str], extra_env: &[(&str, &str)]) -> Stack {
        Stack::start_instances(name, brokers, registry, services, 1, extra_env)
    }

    /// Starts `instances` processes of every service, instance `i` with `SERVICE_INSTANCE=i`, its
    /// own HTTP port and its own read-model database (`data/<service>-<i>.db`, or a PostgreSQL
    /// database each), and waits until each answers `/health`. The consumer groups split the
    /// partitions between a service's instances; every instance serves complete read models.
    pub fn start_scaled(name: &str, instances: usize, extra_env: &[(&str, &str)]) -> Stack {
        Stack::start_instances(name, &env("KAFKA_BROKERS"), &env("SCHEMA_REGISTRY_URL"), &services(), instances, extra_env)
    }

    fn start_instances(name: &str, brokers: &str, registry: &str, services: &[&'static str], instances: usize, extra_env: &[(&str, &str)]) -> Stack {
        assert!(instances >= 1, "a stack runs at least one instance of each service");
        let dir = test_dir(name);
        std::fs::create_dir_all(dir.join("logs")).expect("stack folder");
        let brokers = brokers.to_string();
        let producer = test_producer(&brokers);
        let processes: Vec<Process> = services.iter().flat_map(|service| (0..instances).map(move |instance| (*service, instance))).collect();
        let postgres = if runtime::testing::read_model_db_is_postgres() {
            let stack_name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| name.to_string());
            let names: Vec<(Process, String)> = processes
                .iter()
                .map(|&(service, instance)| {
                    let label = if instances > 1 { format!("{stack_name}_{service}_{instance}") } else { format!("{stack_name}_{service}") };
                    ((service, instance), runtime::testing::unique_database_name(&label))
                })
                .collect();
            block_on(async move {
                let mut databases = HashMap::new();
                for (process, name) in names {
                    let url = runtime::testing::create_postgres_database(&name).await;
                    databases.insert(process, (name, url));
                }
                databases
            })
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        } else {
            HashMap::new()
        };
        let stack = Stack {
            registry: registry.to_string(),
            brokers,
            instances,
            ports: processes.iter().map(|process| (*process, free_port())).collect(),
            postgres,
            children: Mutex::new(HashMap::new()),
            extra_env: extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            dir,
            producer,
            // No idle connections kept: a stack is shared by the tests of a binary, each on its
            // own tokio runtime, and a pooled connection belongs to the runtime that opened it.
            // Reused after that test's runtime is gone, it fails at once, although the request
            // may already have been sent and handled (seen as a POST that "got no answer").
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).pool_max_idle_per_host(0).build().expect("http client"),
        };
        for process in &processes {
            stack.launch(*process);
        }
        for process in &processes {
            stack.wait_healthy(*process);
        }
        stack
    }

    /// POST a JSON body → (status, JSON body or Null).
    pub async fn post(&self, service: &str, path: &str, body: &Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, service, path, body).await
    }

    /// PUT a JSON body → (status, JSON body or Null).
    pub async fn put(&self, service: &str, path: &str, body: &Value) -> (u16, Value) {
        self.send_json(reqwest::Method::PUT, service, path, body).await
    }

    async fn send_json(&self, method: reqwest::Method, service: &str, path: &str, body: &Value) -> (u16, Value) {
        match self.http.request(method, self.url(service, path)).json(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// POST, tried again with the same body while it gets no answer at all (up to `attempts`
    /// tries): for bodies that carry their own ids, so a retry is the same request.
    pub async fn post_answered(&self, service: &str, path: &str, body: &Value, attempts: u32) -> (u16, Value) {
        let mut attempt = 1;
        loop {
            let (status, answer) = self.post(service, path, body).await;
            if status != 0 || attempt >= attempts {
                return (status, answer);
            }
            eprintln!("POST {path} got no answer (attempt {attempt}); retrying with the same body");
            attempt += 1;
        }
    }

    /// GET → (status, body as text), for non-JSON endpoints such as `/metrics`.
    pub async fn get_text(&self, service: &str, path: &str) -> (u16, String) {
        self.get_text_from(service, 0, path).await
    }

    /// [`Stack::get_text`] from one instance of the service.
    pub async fn get_text_from(&self, service: &str, instance: usize, path: &str) -> (u16, String) {
        match self.http.get(self.url_of(service, instance, path)).send().await {
            Ok(response) => (response.status().as_u16(), response.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    /// The environment `service` runs with: `KAFKA_BROKERS`, `SCHEMA_REGISTRY_URL`, `RUN_DIR`,
    /// `DATABASE_URL` (PostgreSQL only; SQLite is the service's default under `RUN_DIR`),
    /// `HTTP_ADDR`, then the stack's extra variables. A one-shot run of the service binary with
    /// it (see [`Stack::service_command`]) works on the same database as the service.
    pub fn service_env(&self, service: &str) -> Vec<(String, String)> {
        self.process_env(self.process(service, 0))
    }

    /// [`Stack::service_env`] of one process. The instances of a scaled stack share `RUN_DIR`
    /// (so the notification sink, like a webhook's receiver, is one for the whole service) and
    /// each names its own SQLite file in `DATABASE_URL`.
    fn process_env(&self, process: Process) -> Vec<(String, String)> {
        let mut env = vec![
            ("KAFKA_BROKERS".to_string(), self.brokers.clone()),
            ("SCHEMA_REGISTRY_URL".to_string(), self.registry.clone()),
            ("RUN_DIR".to_string(), self.dir.display().to_string()),
        ];
        if self.postgres.contains_key(&process) || self.instances > 1 {
            env.push(("DATABASE_URL".to_string(), self.process_database_url(process)));
        }
        if self.instances > 1 {
            env.push(("SERVICE_INSTANCE".to_string(), process.1.to_string()));
        }
        env.push(("HTTP_ADDR".to_string(), format!("127.0.0.1:{}", self.ports[&process])));
        if process.0 == "order-svc" {
            // The web console reads every service's /ready; here they are not on their usual ports.
            // Only the services this stack runs; the console shows the others as not answering.
            let urls: Vec<String> = services()
                .iter()
                .filter_map(|service| self.ports.iter().find(|((name, instance), _)| name == service && *instance == 0))
                .map(|((service, _), port)| format!("{service}=http://127.0.0.1:{port}"))
                .collect();
            env.push(("CONSOLE_SERVICE_URLS".to_string(), urls.join(",")));
        }
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// The service binary (`target/<profile>/<service>`) with [`Stack::service_env`] and stdin
    /// from /dev/null, for one-shot subcommands (e.g. `replay ...`): add arguments and run it.
    /// `DATABASE_URL` and `OTEL_EXPORTER_OTLP_ENDPOINT` of the test process are not inherited.
    pub fn service_command(&self, service: &str) -> Command {
        self.process_command(self.process(service, 0))
    }

    fn process_command(&self, process: Process) -> Command {
        let mut command = Command::new(target_dir().join(process.0));
        command.env_remove("DATABASE_URL").env_remove("OTEL_EXPORTER_OTLP_ENDPOINT").envs(self.process_env(process)).stdin(Stdio::null());
        command
    }

    /// `<service>` in an ordinary stack, `<service>-<instance>` in a scaled one: the process's
    /// log and SQLite file names.
    fn process_label(&self, (service, instance): Process) -> String {
        if self.instances > 1 { format!("{service}-{instance}") } else { service.to_string() }
    }

    fn launch(&self, process: Process) {
        let log_path = self.dir.join("logs").join(format!("{}.log", self.process_label(process)));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path).expect("log file");
        let mut command = self.process_command(process);
        command.stdout(log.try_clone().expect("log handle")).stderr(log);
        let child = spawn(command);
        self.children.lock().unwrap_or_else(|p| p.into_inner()).insert(process, child);
    }

    /// The process key of `service`'s `instance`, with the service's `&'static` name.
    fn process(&self, service: &str, instance: usize) -> Process {
        let key = self.ports.keys().copied().find(|(s, i)| *s == service && *i == instance);
        key.unwrap_or_else(|| panic!("{service} instance {instance} is not part of this stack ({} per service)", self.instances))
    }

    /// Whether the process is live (one that exited is forgotten).
    fn running(&self, process: Process) -> bool {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        match children.get_mut(&process).map(|child| child.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                children.remove(&process);
                false
            }
            None => false,
        }
    }

    fn wait_healthy(&self, process: Process) {
        let url = self.url_of(process.0, process.1, "/health");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(200) = reqwest::blocking_get_status(&url) {
                return;
            }
            assert!(Instant::now() < deadline, "{} did not become healthy; see {}", self.process_label(process), self.dir.join("logs").display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no shutdown hooks, no flushes, like a crash.
    pub fn kill(&self, service: &'static str) {
        self.kill_instance(service, 0);
    }

    /// [`Stack::kill`] of one instance of the service.
    pub fn kill_instance(&self, service: &str, instance: usize) {
        let process = self.process(service, instance);
        if let Some(mut child) = self.children.lock().unwrap_or_else(|p| p.into_inner()).remove(&process) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&self, service: &'static str) {
        let process = self.process(service, 0);
        self.kill_instance(service, 0);
        self.launch(process);
        self.wait_healthy(process);
    }

    /// Sends `signal` to the service's process (e.g. SIGSTOP and SIGCONT for a stalled
    /// process); false when it is not running.
    pub fn signal(&self, service: &str, signal: libc::c_int) -> bool {
        let process = self.process(service, 0);
        let children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        children.get(&process).is_some_and(|child| signal_child(child, signal))
    }

    /// Graceful stop: SIGTERM, then waits for the process to exit (SIGKILL after 30 s).
    pub fn stop(&self, service: &str) {
        let process = self.process(service, 0);
        let Some(mut child) = self.children.lock().unwrap_or_else(|p| p.into_inner()).remove(&process) else { return };
        stop_child(&mut child, service);
    }

    /// Points the stack at another broker and registry (e.g. a new, empty one): services started
    /// from now on, and the commands the stack sends, go there. Stop the services first.
    pub fn move_to(&mut self, brokers: &str, registry: &str) {
        assert!(self.ports.keys().all(|process| !self.running(*process)), "stop every service before moving the stack to another broker");
        self.brokers = brokers.to_string();
        self.registry = registry.to_string();
        self.producer = test_producer(brokers);
    }

    /// Starts `service` (after [`Stack::stop`] or [`Stack::kill`]) and waits until it answers
    /// `/health`. Panics when it is still running.
    pub fn start_service(&self, service: &str) {
        self.start_instance(service, 0);
    }

    /// [`Stack::start_service`] of one instance of the service (e.g. after
    /// [`Stack::kill_instance`]).
    pub fn start_instance(&self, service: &str, instance: usize) {
        let process = self.process(service, instance);
        assert!(!self.running(process), "{} is already running; stop or kill it first", self.process_label(process));
        self.launch(process);
        self.wait_healthy(process);
    }

    /// The read-model database `service` runs on: its PostgreSQL database in a
    /// READ_MODEL_DB=postgres pass, else its SQLite file (the service's own default).
    pub fn database_url(&self, service: &str) -> String {
        self.process_database_url(self.process(service, 0))
    }

    fn process_database_url(&self, process: Process) -> String {
        match self.postgres.get(&process) {
            Some((_, url)) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.process_sqlite_file(process).display()),
        }
    }

    /// `<RUN_DIR>/data/<service>.db`, where a service keeps its read models on SQLite
    /// (`<service>-0.db` in a scaled stack).
    pub fn sqlite_file(&self, service: &str) -> PathBuf {
        self.process_sqlite_file(self.process(service, 0))
    }

    fn process_sqlite_file(&self, process: Process) -> PathBuf {
        self.dir.join("data").join(format!("{}.db", self.process_label(process)))
    }

    /// Empties `service`'s read-model database; the service must be stopped. SQLite: removes
    /// `<RUN_DIR>/data/<service>.db` and its `-wal`/`-shm` files. PostgreSQL: drops the database
    /// (`WITH (FORCE)`) and creates it again, empty, under the same name.
    pub fn delete_database(&self, service: &str) {
        let process = self.process(service, 0);
        assert!(!self.running(process), "{service} is running: stop it before deleting its database");
        match self.postgres.get(&process) {
            Some((name, _)) => {
                let name = name.clone();
                block_on(async move {
                    runtime::testing::drop_postgres_database(&name).await.unwrap_or_else(|error| panic!("{error}"));
                    runtime::testing::create_postgres_database(&name).await;
                })
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            }
            None => {
                let db = self.sqlite_file(service);
                for suffix in ["", "-wal", "-shm"] {
                    let path = PathBuf::from(format!("{}{suffix}", db.display()));
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                        Err(error) => panic!("removing {}: {error}", path.display()),
                    }
                }
            }
        }
    }

    pub fn url(&self, service: &str, path: &str) -> String {
        self.url_of(service, 0, path)
    }

    /// [`Stack::url`] of one instance of the service.
    pub fn url_of(&self, service: &str, instance: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[&self.process(service, instance)])
    }

    /// Produces one JSON command, keyed like a kcat user would (`-k <aggregate id>`).
    pub async fn send(&self, topic: &str, key: &str, command: &Value) {
        let payload = command.to_string();
        self.producer
            .send(FutureRecord::to(topic).key(key).payload(&payload), Timeout::After(Duration::from_secs(10)))
            .await
            .map_err(|(error, _)| error)
            .unwrap_or_else(|error| panic!("producing to {topic}: {error}"));
    }

    /// Produces raw bytes (for malformed input).
    pub async fn send_raw(&self, topic: &str, key: Option<&str>, payload: &[u8]) {
        let mut record = FutureRecord::<str, [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        self.producer.send(record, Timeout::After(Duration::from_secs(10))).await.map_err(|(e, _)| e).expect("produce");
    }

    /// Produces one record exactly as given: any key bytes or none, any value or none (a
    /// tombstone when there is a key); returns its partition and offset.
    pub async fn send_record(&self, topic: &str, key: Option<&[u8]>, payload: Option<&[u8]>) -> (i32, i64) {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        let delivered = self.producer.send(record, Timeout::After(Duration::from_secs(10))).await.map_err(|(e, _)| e).expect("produce");
        (delivered.partition, delivered.offset)
    }

    /// GET → (status, JSON body or Null).
    pub async fn get(&self, service: &str, path: &str) -> (u16, Value) {
        self.get_from(service, 0, path).await
    }

    /// [`Stack::get`] from one instance of the service.
    pub async fn get_from(&self, service: &str, instance: usize, path: &str) -> (u16, Value) {
        match self.http.get(self.url_of(service, instance, path)).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// The `fields` of every JSON log line of `service` whose message is `message`.
    pub fn logged(&self, service: &str, message: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.join("logs").join(format!("{service}.log"))).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["message"] == message)
            .map(|line| line["fields"].clone())
            .collect()
    }

    /// Waits until `service` logged `message` with fields that satisfy `done`, the newest such
    /// line first; returns its fields, or panics after `timeout`.
    pub async fn logs(&self, timeout: Duration, service: &str, message: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(fields) = self.logged(service, message).into_iter().rev().find(|fields| done(fields)) {
                return fields;
            }
            assert!(
                Instant::now() < deadline,
                "{service} did not log {message:?} as expected within {timeout:?}; see {}",
                self.dir.join("logs").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `GET path` until `done(body)` holds (status 200), or panics after `timeout` with the
    /// last answer. Polling with a deadline, not sleeping: tests wait exactly as long as needed.
    pub async fn eventually(&self, service: &str, path: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, body) = self.get(service, path).await;
            if status == 200 && done(&body) {
                return body;
            }
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting on {service}{path}; last answer {status} {body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Restocks `skus` new SKUs with `units` each and opens one account per entry of
    /// `deposits` with that many cents, through the command topics; returns (skus, customers)
    /// once every balance shows.
    pub async fn stock_and_accounts(&self, prefix: &str, skus: usize, units: i64, deposits: &[i64]) -> (Vec<String>, Vec<String>) {
        let skus: Vec<String> = (0..skus).map(|_| unique(&format!("{prefix}-sku"))).collect();
        let customers: Vec<String> = deposits.iter().map(|_| unique(&format!("{prefix}-cust"))).collect();
        for sku in &skus {
            self.send("stock.commands", sku, &commands::restock(sku, units)).await;
        }
        for (customer, amount) in customers.iter().zip(deposits) {
            self.send("account.commands", customer, &commands::deposit(customer, *amount, "EUR")).await;
        }
        for (customer, amount) in customers.iter().zip(deposits) {
            self.eventually("payment-svc", &format!("/accounts/{customer}"), Duration::from_secs(120), |a| a["balance_cents"] == *amount).await;
        }
        (skus, customers)
    }

    /// A SKU with `units` in stock and a customer with `cents` (EUR), unique to the caller;
    /// returns once both show in the read models.
    pub async fn stocked(&self, units: i64, cents: i64) -> (String, String) {
        let (sku, customer) = (unique("sku"), unique("cust"));
        self.send("stock.commands", &sku, &commands::restock(&sku, units)).await;
        self.send("account.commands", &customer, &commands::deposit(&customer, cents, "EUR")).await;
        self.eventually("inventory-svc", &format!("/stock/{sku}"), Duration::from_secs(60), |s| s["on_hand"] == units).await;
        self.eventually("payment-svc", &format!("/accounts/{customer}"), Duration::from_secs(60), |a| a["balance_cents"] == cents).await;
        (sku, customer)
    }

    /// Waits until the stock view of `sku` shows these units reserved and on hand.
    pub async fn stock_is(&self, sku: &str, reserved: i64, on_hand: i64) -> Value {
        self.eventually("inventory-svc", &format!("/stock/{sku}"), Duration::from_secs(60), |s| s["reserved"] == reserved && s["on_hand"] == on_hand)
            .await
    }

    /// The partition count of `topic` on this stack's broker.
    pub async fn partitions_of(&self, topic: &str) -> i32 {
        let (brokers, topic) = (self.brokers.clone(), topic.to_string());
        tokio::task::spawn_blocking(move || {
            let reader = runtime::kafka::reader(&brokers).expect("reader");
            runtime::kafka::partition_count(&reader, &topic).expect("topic exists")
        })
        .await
        .expect("metadata task")
    }

    /// Waits until the notifications about `order_id` are exactly these kinds (in any order)
    /// and returns them.
    pub async fn notifications_are(&self, order_id: &str, expected: &[&str]) -> Value {
        let sorted_kinds = |notifications: &Value| {
            let mut kinds: Vec<String> =
                notifications.as_array().into_iter().flatten().filter_map(|n| n["kind"].as_str().map(String::from)).collect();
            kinds.sort();
            kinds
        };
        let mut expected: Vec<String> = expected.iter().map(|k| k.to_string()).collect();
        expected.sort();
        self.eventually("notify-svc", &format!("/notifications?order_id={order_id}"), Duration::from_secs(60), |n| sorted_kinds(n) == expected)
            .await
    }

    /// Waits until the order reaches `status` and returns its view.
    pub async fn order_reaches(&self, order_id: &str, status: &str) -> Value {
        self.eventually("order-svc", &format!("/orders/{order_id}"), Duration::from_secs(60), |o| o["status"] == status).await
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (_, mut child) in self.children.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Best effort: the server goes away with the test run anyway.
        let names: Vec<String> = self.postgres.values().map(|(name, _)| name.clone()).collect();
        if !names.is_empty() {
            let _ = block_on(async move {
                for name in names {
                    if let Err(error) = runtime::testing::drop_postgres_database(&name).await {
                        eprintln!("dropping test database {name}: {error}");
                    }
                }
            });
        }
    }
}

/// Minimal blocking GET for health checks before any runtime exists.
mod reqwest {
    pub use ::reqwest::*;
    pub fn blocking_get_status(url: &str) -> std::io::Result<u16> {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").ok_or_else(|| std::io::Error::other("http only"))?;
        let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
        let mut stream = std::net::TcpStream::connect(host)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        std::str::from_utf8(&head[9..12]).ok().and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other("bad status line"))
    }
}

/// Commands as a user types them into kcat.
pub mod commands {
    use serde_json::{Value, json};

    pub fn place_order(order_id: &str, customer_id: &str, lines: &[(&str, i64, i64)], currency: &str, country: &str) -> Value {
        json!({
            "type": "PlaceOrder",
            "order_id": order_id,
            "customer_id": customer_id,
            "lines": lines.iter().map(|(sku, quantity, price)| json!({"sku": sku, "quantity": quantity, "unit_price_cents": price})).collect::<Vec<_>>(),
            "currency": currency,
            "shipping_address": {"name": "Ada Lovelace", "street": "Main 1", "city": "Berlin", "postal_code": "10115", "country": country},
        })
    }
    pub fn restock(sku: &str, quantity: i64) -> Value {
        json!({"type": "RestockItem", "sku": sku, "quantity": quantity})
    }
    pub fn deposit(customer_id: &str, amount_cents: i64, currency: &str) -> Value {
        json!({"type": "DepositFunds", "customer_id": customer_id, "amount_cents": amount_cents, "currency": currency})
    }
    pub fn cancel(order_id: &str) -> Value {
        json!({"type": "CancelOrder", "order_id": order_id, "reason": "changed my mind"})
    }
    pub fn dispatch(order_id: &str) -> Value {
        json!({"type": "DispatchShipment", "order_id": order_id})
    }
    pub fn deliver(order_id: &str) -> Value {
        json!({"type": "ConfirmDelivery", "order_id": order_id})
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub headers: HashMap<String, String>,
    pub payload: Vec<u8>,
}

impl Record {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
}

impl Stack {
    /// Every record of `topic` with this key, from the beginning up to the current end.
    pub async fn records(&self, topic: &str, key: &str) -> Vec<Record> {
        let brokers = self.brokers.clone();
        let (topic, key) = (topic.to_string(), key.to_string());
        tokio::task::spawn_blocking(move || {
            use rdkafka::{Message, message::Headers};
            let reader = runtime::kafka::reader(&brokers).expect("reader");
            let partitions = runtime::kafka::partition_count(&reader, &topic).expect("topic exists");
            let mut found = Vec::new();
            for partition in 0..partitions {
                let (low, high) = runtime::kafka::watermarks(&reader, &topic, partition).expect("watermarks");
                runtime::kafka::read_range(&reader, &topic, partition, low, high, |m| {
                    if m.key() == Some(key.as_bytes()) {
                        let headers = m
                            .headers()
                            .map(|hs| {
                                hs.iter()
                                    .map(|h| (h.key.to_string(), h.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        found.push(Record { partition, offset: m.offset(), headers, payload: m.payload().unwrap_or_default().to_vec() });
                    }
                })
                .expect("read");
            }
            found
        })
        .await
        .expect("reader task")
    }

    /// Polls `topic` until a record with this key satisfies `done`.
    pub async fn record_appears(&self, topic: &str, key: &str, timeout: Duration, done: impl Fn(&Record) -> bool) -> Record {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(record) = self.records(topic, key).await.into_iter().find(|r| done(r)) {
                return record;
            }
            assert!(Instant::now() < deadline, "no matching record with key {key} on {topic} within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Produces a copy of a record to an explicit partition, as a redelivery would present it.
    pub async fn redeliver(&self, topic: &str, key: &str, record: &Record) {
        let mut headers = rdkafka::message::OwnedHeaders::new();
        for (k, v) in &record.headers {
            headers = headers.insert(rdkafka::message::Header { key: k, value: Some(v.as_bytes()) });
        }
        self.producer
            .send(
                FutureRecord::to(topic).key(key).partition(record.partition).payload(&record.payload).headers(headers),
                Timeout::After(Duration::from_secs(10)),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("redelivered");
    }
}

/// An id with the given prefix whose partition (Java murmur2, `partitions`) equals `partition`.
pub fn id_on_partition(prefix: &str, partition: i32, partitions: i32) -> String {
    loop {
        let candidate = unique(prefix);
        if runtime::kafka::partition_for(&candidate, partitions) == partition {
            return candidate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stack's one-shot helpers on this pass's database (SQLite or PostgreSQL): a stopped
    /// service whose database was deleted starts on an empty one and rebuilds its read model
    /// from the topics.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_deleted_database_is_rebuilt_from_the_topics() {
        const SVC: &str = "inventory-svc";
        let stack = Stack::start_on("helpers", &env("KAFKA_BROKERS"), &env("SCHEMA_REGISTRY_URL"), &[SVC], &[]);
        let service_env = stack.service_env(SVC);
        let database_url = service_env.iter().find(|(k, _)| k == "DATABASE_URL").map(|(_, v)| v.clone());
        assert_eq!(database_url.is_some(), runtime::testing::read_model_db_is_postgres(), "{service_env:?}");
        let help = stack.service_command(SVC).arg("--help").output().expect("service binary runs");
        assert!(help.status.success(), "{help:?}");

        let sku = unique("sku");
        let path = format!("/stock/{sku}");
        stack.send("stock.commands", &sku, &commands::restock(&sku, 7)).await;
        stack.eventually(SVC, &path, Duration::from_secs(60), |stock| stock["on_hand"] == 7).await;

        stack.stop(SVC);
        assert_eq!(stack.get(SVC, "/health").await.0, 0, "stopped");
        stack.delete_database(SVC);
        match &database_url {
            Some(url) => {
                let pool = runtime::connect_read_model_db(url, None).await.expect("the recreated database");
                let checkpoints: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM projection_checkpoints").fetch_one(&pool).await.expect("count");
                assert_eq!(checkpoints, 0, "the database was emptied");
                pool.close().await;
            }
            None => assert!(!stack.sqlite_file(SVC).exists(), "the SQLite file was removed"),
        }

        stack.start_service(SVC);
        stack.eventually(SVC, &path, Duration::from_secs(60), |stock| stock["on_hand"] == 7).await;
    }
}
