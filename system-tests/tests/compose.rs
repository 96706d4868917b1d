//! `docker-compose.kafka.yml` (the system on Apache Kafka) and its 3-broker override
//! `docker-compose.kafka-3.yml` say what the scripts and the services say:
//!
//! * every service of `services.tsv` is there, runs its own binary, publishes its port from the
//!   file, listens on it (`HTTP_ADDR`), is healthy on `GET /ready`, and starts after the broker,
//!   the registry, its database and the one-shot init;
//! * every environment variable a service reads (found in the sources: the runtime's and the
//!   service crate's) is in its `environment`, with a value or passed on from the host;
//! * init runs `orderctl create-topics` and `register-schemas` with the variables orderctl reads;
//! * with three brokers, every client lists all three, the brokers agree on the quorum, and
//!   nothing pre-creates the topics or pins their replication factor: init runs after all three
//!   brokers are healthy, so `orderctl create-topics` gives every topic 3 replicas and
//!   `min.insync.replicas=2` from the broker count (runtime/src/kafka/topology.rs);
//! * Prometheus scrapes exactly the services of `services.tsv`, by compose name and port
//!   (`observability/prometheus.yml`, mounted where Prometheus reads it); Grafana gets that
//!   Prometheus as its datasource and the dashboards folder from its provisioning files, and
//!   lets anonymous visitors view (the dashboard's queries: system-tests/tests/dashboard.rs);
//! * every published port listens on 127.0.0.1 only;
//! * the images of Kafka, the registry, PostgreSQL, Prometheus and Grafana are pinned.
//!
//! No broker and no Docker: the files are only read. (`scripts/test.sh` also validates them
//! with `docker-compose config`, scripts/lib/compose.sh.)
use serde_norway::{Mapping, Value};
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

const SINGLE: &[&str] = &["docker-compose.kafka.yml"];
const THREE_BROKERS: &[&str] = &["docker-compose.kafka.yml", "docker-compose.kafka-3.yml"];

/// Compose services that are not in `services.tsv`: the infrastructure and the one-shots.
const INFRASTRUCTURE: &[&str] = &["kafka-1", "kafka-2", "kafka-3", "schema-registry", "postgres", "postgres-init", "init"];

/// Compose services that watch the app services: neither in `services.tsv` nor infrastructure
/// the app needs (the system runs without them).
const MONITORING: &[&str] = &["prometheus", "grafana"];

/// What `scripts/up.sh` gives every service (`KAFKA_BROKERS`, `SCHEMA_REGISTRY_URL`, `HTTP_ADDR`,
/// `DATABASE_URL`, `RUN_DIR`) and the rest of `runtime/src/service/config.rs`. The scan of the
/// sources below must find each of them: a scan that stops finding them is broken.
const UP_SH_AND_CONFIG: &[&str] = &["KAFKA_BROKERS", "SCHEMA_REGISTRY_URL", "HTTP_ADDR", "DATABASE_URL", "RUN_DIR", "PARTITIONS"];

/// Read without naming it in the source: tracing's `EnvFilter::try_from_default_env`
/// (runtime/src/observe/telemetry.rs).
const READ_BY_LIBRARIES: &[&str] = &["RUST_LOG"];

/// The images that must carry a version tag (not `latest`, not none).
const PINNED_IMAGES: &[&str] = &["apache/kafka", "confluentinc/cp-schema-registry", "postgres", "prom/prometheus", "grafana/grafana"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository root").to_path_buf()
}

// --------------------------------------------------------------------------- the files

/// The files as `docker compose -f A -f B` combines them: YAML merge keys applied, then each
/// override merged into the base mapping by mapping (anything else is replaced).
fn load(files: &[&str]) -> Value {
    let mut combined = Value::Mapping(Mapping::new());
    for file in files {
        let path = repo().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut value: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        value.apply_merge().unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
        overlay(&mut combined, value);
    }
    combined
}

fn overlay(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => overlay(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

fn services(compose: &Value) -> &Mapping {
    compose.get("services").and_then(Value::as_mapping).expect("a `services` mapping")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    services(compose).get(name).unwrap_or_else(|| {
        let names: Vec<_> = services(compose).keys().filter_map(Value::as_str).collect();
        panic!("no service {name} in the compose file (it has {names:?})")
    })
}

/// A scalar as compose sees it (`PARTITIONS: 6` and `PARTITIONS: "6"` alike); `None` for null.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `environment` as a map; a variable without a value (passed on from the host) maps to `None`.
fn environment(service: &Value) -> BTreeMap<String, Option<String>> {
    match service.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Mapping(map)) => map.iter().map(|(k, v)| (scalar(k).expect("a variable name"), scalar(v))).collect(),
        Some(Value::Sequence(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|entry| match entry.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (entry.to_string(), None),
            })
            .collect(),
        Some(other) => panic!("environment is neither a mapping nor a list: {other:?}"),
    }
}

fn env_value(service: &Value, name: &str, variable: &str) -> String {
    environment(service).get(variable).cloned().flatten().unwrap_or_else(|| panic!("{name}: {variable} has no value"))
}

/// `depends_on` as service → condition (the short list form means `service_started`).
fn depends_on(service: &Value) -> BTreeMap<String, String> {
    match service.get("depends_on") {
        None => BTreeMap::new(),
        Some(Value::Sequence(list)) => list.iter().filter_map(Value::as_str).map(|s| (s.to_string(), "service_started".to_string())).collect(),
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(k, v)| {
                let condition = v.get("condition").and_then(Value::as_str).unwrap_or("service_started");
                (scalar(k).expect("a service name"), condition.to_string())
            })
            .collect(),
        Some(other) => panic!("depends_on is neither a list nor a mapping: {other:?}"),
    }
}

/// `command` or `test` as words (a string is split on whitespace).
fn words(value: Option<&Value>) -> Vec<String> {
    match value {
        None => Vec::new(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Sequence(list)) => list.iter().filter_map(scalar).collect(),
        Some(other) => panic!("neither a string nor a list: {other:?}"),
    }
}

/// Published ports as (host port, container port), from the short syntax
/// `[ip:]host:container[/proto]` or the long one (`published`, `target`).
fn published_ports(service: &Value) -> Vec<(u16, u16)> {
    let Some(ports) = service.get("ports").and_then(Value::as_sequence) else { return Vec::new() };
    ports
        .iter()
        .map(|port| match port {
            Value::Mapping(long) => {
                let number =
                    |key: &str| long.get(key).and_then(scalar).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("port {port:?}: {key}"));
                (number("published"), number("target"))
            }
            short => {
                let text = scalar(short).unwrap_or_else(|| panic!("port {short:?}"));
                let text = text.split('/').next().unwrap_or_default();
                let parts: Vec<&str> = text.rsplitn(3, ':').collect();
                let [container, host, ..] = parts[..] else { panic!("port {text} publishes nothing (no host:container)") };
                (host.parse().unwrap_or_else(|_| panic!("port {text}")), container.parse().unwrap_or_else(|_| panic!("port {text}")))
            }
        })
        .collect()
}

/// The host address of each published port (`127.0.0.1` of `127.0.0.1:9092:9092`; empty when
/// none is given, which means every interface), with the port as written.
fn published_addresses(service: &Value) -> Vec<(String, String)> {
    let Some(ports) = service.get("ports").and_then(Value::as_sequence) else { return Vec::new() };
    ports
        .iter()
        .map(|port| match port {
            Value::Mapping(long) => (long.get("host_ip").and_then(scalar).unwrap_or_default(), format!("{long:?}")),
            short => {
                let text = scalar(short).unwrap_or_else(|| panic!("port {short:?}"));
                let parts: Vec<&str> = text.split('/').next().unwrap_or_default().rsplitn(3, ':').collect();
                (parts.get(2).map(|ip| ip.to_string()).unwrap_or_default(), text)
            }
        })
        .collect()
}

/// Bind mounts as (host path, container path), from the short syntax `./host:/container[:ro]`
/// or the long one (`type: bind`); named volumes are left out. Host paths are resolved against
/// the repository root, where the compose files are.
fn bind_mounts(service: &Value) -> Vec<(PathBuf, String)> {
    let Some(volumes) = service.get("volumes").and_then(Value::as_sequence) else { return Vec::new() };
    let host = |source: &str| repo().join(source.strip_prefix("./").unwrap_or(source));
    volumes
        .iter()
        .filter_map(|volume| match volume {
            Value::Mapping(long) => {
                let field = |key: &str| long.get(key).and_then(Value::as_str);
                (field("type") == Some("bind"))
                    .then(|| (host(field("source").expect("a bind's source")), field("target").expect("a bind's target").to_string()))
            }
            short => {
                let text = scalar(short).unwrap_or_else(|| panic!("volume {short:?}"));
                let mut parts = text.split(':');
                let (source, target) = (parts.next().unwrap_or_default(), parts.next()?);
                source.starts_with(['.', '/']).then(|| (host(source), target.to_string()))
            }
        })
        .collect()
}

/// Where `container_path` of `service` comes from on the host: the bind mount of it or of a
/// folder above it.
fn mounted(service: &Value, name: &str, container_path: &str) -> PathBuf {
    let mounts = bind_mounts(service);
    mounts
        .iter()
        .find_map(|(host, target)| {
            let rest = container_path.strip_prefix(target.trim_end_matches('/'))?;
            match rest.strip_prefix('/') {
                Some(rest) => Some(host.join(rest)),
                None => rest.is_empty().then(|| host.clone()),
            }
        })
        .unwrap_or_else(|| panic!("{name}: nothing of the repository is mounted at {container_path} (bind mounts {mounts:?})"))
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// The `.yml`/`.yaml` files of a folder, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> =
        entries.map(|entry| entry.expect("a directory entry").path()).filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml")).collect();
    files.sort();
    files
}

fn sequence<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_sequence).map(Vec::as_slice).unwrap_or_default()
}

/// The `host` of `host:port` entries in a comma-separated list such as `KAFKA_BROKERS`.
fn hosts(list: &str) -> BTreeSet<String> {
    list.split(',').map(|entry| entry.trim().rsplit('/').next().unwrap_or_default().split(':').next().unwrap_or_default().to_string()).collect()
}

// ------------------------------------------------------------ what the sources read

/// The environment variables the Rust files under `dir` read: `std::env::var("X")` and
/// `var_os`, the config closure `var("X", default)` (runtime/src/service/config.rs), clap's
/// `env = "X"`, and constants `const …_ENV: &str = "X"` read with `env::var`. Folders named in
/// `skip` (relative to `dir`) are left out.
fn env_vars_read_under(dir: &Path, skip: &[&str]) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display())) {
            let path = entry.expect("a directory entry").path();
            if skip.iter().any(|s| path == dir.join(s)) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                for name in env_var_names(&text) {
                    found.entry(name).or_insert_with(|| path.strip_prefix(repo()).unwrap_or(&path).to_path_buf());
                }
            }
        }
    }
    found
}

fn env_var_names(source: &str) -> BTreeSet<String> {
    const MARKERS: [&str; 5] = ["var(\"", "var_os(\"", "env = \"", "_ENV: &str = \"", "number_from_env(\""];
    let mut names = BTreeSet::new();
    for marker in MARKERS {
        for (at, _) in source.match_indices(marker) {
            let rest = &source[at + marker.len()..];
            let Some(end) = rest.find('"') else { continue };
            let name = &rest[..end];
            let shaped =
                name.starts_with(|c: char| c.is_ascii_uppercase()) && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if shaped {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// Variables every service reads: the runtime's (not its test kit, not orderctl) and those read
/// by libraries.
fn runtime_env_vars() -> BTreeMap<String, PathBuf> {
    let mut vars = env_vars_read_under(&repo().join("runtime/src"), &["testing", "bin"]);
    for name in READ_BY_LIBRARIES {
        vars.insert(name.to_string(), PathBuf::from("runtime/src/observe/telemetry.rs"));
    }
    vars
}

// -------------------------------------------------------------------------- the tests

#[test]
fn the_source_scan_finds_what_up_sh_gives_the_services() {
    let vars = runtime_env_vars();
    for name in UP_SH_AND_CONFIG.iter().chain(READ_BY_LIBRARIES) {
        assert!(vars.contains_key(*name), "the runtime no longer reads {name}, or the scan misses it (found {:?})", vars.keys());
    }
    let sample =
        r#"const X_ENV: &str = "SOME_SETTING"; std::env::var("OTHER_ONE"); var("lower"); env!("CARGO_PKG_NAME"); number_from_env("A_NUMBER", 1)"#;
    assert_eq!(env_var_names(sample), BTreeSet::from(["A_NUMBER".to_string(), "OTHER_ONE".to_string(), "SOME_SETTING".to_string()]));
}

#[test]
fn every_service_of_services_tsv_is_in_the_compose_file_on_its_port() {
    let compose = load(SINGLE);
    let listed: Vec<_> = runtime::services();
    assert!(!listed.is_empty(), "services.tsv lists no service");
    for entry in &listed {
        let (name, port) = (entry.name, entry.port);
        let svc = service(&compose, name);
        assert_eq!(words(svc.get("command")).first().map(String::as_str), Some(name), "{name}: command must run the binary {name}");
        assert!(
            published_ports(svc).contains(&(port, port)),
            "{name}: must publish port {port} (services.tsv) as {port}:{port}, has {:?}",
            published_ports(svc)
        );
        let addr = env_value(svc, name, "HTTP_ADDR");
        assert!(addr.ends_with(&format!(":{port}")), "{name}: HTTP_ADDR {addr} is not on port {port}");
        let health = words(svc.get("healthcheck").and_then(|h| h.get("test"))).join(" ");
        assert!(health.contains(&format!(":{port}/ready")), "{name}: healthcheck must ask :{port}/ready, is `{health}`");
        let build = svc.get("build").unwrap_or_else(|| panic!("{name}: no build section (the image comes from ./Dockerfile)"));
        let dockerfile = build.get("dockerfile").and_then(Value::as_str).unwrap_or("Dockerfile");
        let context = build.get("context").and_then(Value::as_str).or(build.as_str()).unwrap_or(".");
        assert!(repo().join(context).join(dockerfile).is_file(), "{name}: build file {context}/{dockerfile} is missing");
    }
    let names: BTreeSet<&str> = listed.iter().map(|entry| entry.name).collect();
    for key in services(&compose).keys().filter_map(Value::as_str) {
        assert!(
            names.contains(key) || INFRASTRUCTURE.contains(&key) || MONITORING.contains(&key),
            "compose service {key} is neither in services.tsv nor infrastructure nor monitoring"
        );
    }
}

#[test]
fn every_service_has_every_variable_it_reads() {
    let compose = load(SINGLE);
    let runtime_vars = runtime_env_vars();
    for entry in runtime::services() {
        let name = entry.name;
        let env = environment(service(&compose, name));
        let mut wanted = runtime_vars.clone();
        wanted.extend(env_vars_read_under(&repo().join(entry.crate_name).join("src"), &[]));
        let missing: Vec<String> =
            wanted.iter().filter(|(var, _)| !env.contains_key(*var)).map(|(var, file)| format!("{var} (read in {})", file.display())).collect();
        assert!(
            missing.is_empty(),
            "{name} in docker-compose.kafka.yml lacks {missing:?}: add each to its environment (a value, or none to pass it on)"
        );
        for var in UP_SH_AND_CONFIG.iter().chain(READ_BY_LIBRARIES) {
            assert!(env.get(*var).is_some_and(Option::is_some), "{name}: {var} needs a value in the compose file (scripts/up.sh always sets it)");
        }
        if let Some(Some(service_name)) = env.get("SERVICE_NAME") {
            assert_eq!(service_name, name, "{name}: SERVICE_NAME (its Kafka client.id)");
        }
    }
}

#[test]
fn every_service_starts_after_broker_registry_database_and_init() {
    let compose = load(SINGLE);
    let databases: BTreeSet<String> =
        env_value(service(&compose, "postgres-init"), "postgres-init", "DATABASES").split_whitespace().map(str::to_string).collect();
    let init_partitions = env_value(service(&compose, "init"), "init", "PARTITIONS");
    for entry in runtime::services() {
        let name = entry.name;
        let svc = service(&compose, name);
        let deps = depends_on(svc);
        let expect = |dependency: &str, condition: &str| {
            assert_eq!(deps.get(dependency).map(String::as_str), Some(condition), "{name}: depends_on {dependency} ({condition})");
        };
        expect("init", "service_completed_successfully");
        expect("postgres-init", "service_completed_successfully");
        for broker in hosts(&env_value(svc, name, "KAFKA_BROKERS")) {
            assert!(services(&compose).contains_key(broker.as_str()), "{name}: KAFKA_BROKERS names {broker}, not a compose service");
            expect(&broker, "service_healthy");
        }
        let registry = env_value(svc, name, "SCHEMA_REGISTRY_URL");
        for host in hosts(&registry) {
            expect(&host, "service_healthy");
        }
        // The same database name as `POSTGRES_URL=... scripts/up.sh` (scripts/lib/services.sh).
        let database = format!("orderflow_{}", name.replace('-', "_"));
        let url = env_value(svc, name, "DATABASE_URL");
        assert!(url.starts_with("postgres://") && url.ends_with(&format!("/{database}")), "{name}: DATABASE_URL {url} is not database {database}");
        assert!(databases.contains(&database), "postgres-init does not create {database} (DATABASES: {databases:?})");
        assert_eq!(env_value(svc, name, "PARTITIONS"), init_partitions, "{name}: PARTITIONS differs from init's, which creates the topics");
    }
}

#[test]
fn init_creates_the_topics_and_registers_the_schemas_with_orderctl() {
    let compose = load(SINGLE);
    let init = service(&compose, "init");
    let command = words(init.get("command")).join(" ");
    for step in ["orderctl create-topics", "orderctl register-schemas"] {
        assert!(command.contains(step), "init must run `{step}`, runs `{command}`");
    }
    assert_eq!(init.get("restart").and_then(Value::as_str), Some("no"), "init is a one-shot");
    let env = environment(init);
    // `orderctl stuck` is the operator's command (it asks order-svc over HTTP), not init's.
    const STUCK_ONLY: [&str; 2] = ["API_TOKEN", "ORDER_SVC_URL"];
    for (var, file) in env_vars_read_under(&repo().join("runtime/src/bin"), &[]) {
        if STUCK_ONLY.contains(&var.as_str()) {
            continue;
        }
        assert!(env.get(&var).is_some_and(Option::is_some), "init lacks {var} (read by {})", file.display());
    }
    let deps = depends_on(init);
    for dependency in ["kafka-1", "schema-registry"] {
        assert_eq!(deps.get(dependency).map(String::as_str), Some("service_healthy"), "init: depends_on {dependency}");
    }
}

#[test]
fn three_brokers_replicate_every_topic_three_times_with_two_in_sync() {
    let compose = load(THREE_BROKERS);
    let brokers = ["kafka-1", "kafka-2", "kafka-3"];
    let mut node_ids = BTreeSet::new();
    let mut host_ports = BTreeSet::new();
    for broker in brokers {
        let node = service(&compose, broker);
        let env = |var: &str| env_value(node, broker, var);
        assert_eq!(env("KAFKA_PROCESS_ROLES"), "broker,controller", "{broker}");
        assert_eq!(env("KAFKA_CONTROLLER_QUORUM_VOTERS"), "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093", "{broker}");
        assert_eq!(env("KAFKA_DEFAULT_REPLICATION_FACTOR"), "3", "{broker}");
        assert_eq!(env("KAFKA_MIN_INSYNC_REPLICAS"), "2", "{broker}");
        assert_eq!(env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"), "3", "{broker}");
        assert_eq!(env("CLUSTER_ID"), env_value(service(&compose, "kafka-1"), "kafka-1", "CLUSTER_ID"), "{broker}: one cluster");
        assert!(env("KAFKA_ADVERTISED_LISTENERS").contains(&format!("PLAINTEXT://{broker}:")), "{broker}: advertises itself");
        node_ids.insert(env("KAFKA_NODE_ID"));
        host_ports.extend(published_ports(node).into_iter().map(|(host, _)| host));
    }
    assert_eq!((node_ids.len(), host_ports.len()), (3, 3), "distinct node ids {node_ids:?} and host ports {host_ports:?}");
    let all: BTreeSet<String> = brokers.iter().map(|b| b.to_string()).collect();

    for name in runtime::services().iter().map(|entry| entry.name).chain(["init"]) {
        assert_eq!(hosts(&env_value(service(&compose, name), name, "KAFKA_BROKERS")), all, "{name}: KAFKA_BROKERS with three brokers");
    }
    let registry = service(&compose, "schema-registry");
    assert_eq!(hosts(&env_value(registry, "schema-registry", "SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS")), all, "schema-registry's brokers");
    assert_eq!(env_value(registry, "schema-registry", "SCHEMA_REGISTRY_KAFKASTORE_TOPIC_REPLICATION_FACTOR"), "3", "the _schemas topic");

    // The topics' replication comes from the brokers init finds, so init must find all three.
    let init_deps = depends_on(service(&compose, "init"));
    for broker in brokers {
        assert_eq!(init_deps.get(broker).map(String::as_str), Some("service_healthy"), "init after {broker}: one replica per broker listed");
    }
    for (name, svc) in services(&compose) {
        let name = scalar(name).unwrap_or_default();
        let script = [words(svc.get("entrypoint")), words(svc.get("command"))].concat().join(" ");
        assert!(!script.contains("kafka-topics"), "{name} creates topics itself; orderctl create-topics (init) is to: {script}");
        for (variable, value) in environment(svc) {
            if variable == "REPLICATION_FACTOR" {
                // Unset or passed on from the host: a value here would override the broker count.
                assert_eq!(value, None, "{name}: REPLICATION_FACTOR is pinned in the compose files");
            } else if variable.ends_with("REPLICATION_FACTOR") {
                assert_eq!(value.as_deref(), Some("3"), "{name}: {variable} with three brokers");
            }
        }
    }
}

#[test]
fn infrastructure_images_are_pinned() {
    let compose = load(THREE_BROKERS);
    let mut seen = BTreeSet::new();
    for (name, svc) in services(&compose) {
        let name = scalar(name).unwrap_or_default();
        let Some(image) = svc.get("image").and_then(Value::as_str) else { continue };
        let (repository, tag) = image.rsplit_once(':').unwrap_or((image, ""));
        if PINNED_IMAGES.contains(&repository) {
            seen.insert(repository.to_string());
            // `4.1.0`, or Prometheus's `v3.5.0`.
            let version = tag.strip_prefix('v').unwrap_or(tag);
            assert!(version.starts_with(|c: char| c.is_ascii_digit()), "{name}: image {image} must name a version");
        }
    }
    assert_eq!(seen, PINNED_IMAGES.iter().map(|i| i.to_string()).collect(), "Kafka, the registry, PostgreSQL, Prometheus and Grafana are all used");
}

#[test]
fn every_published_port_listens_on_127_0_0_1_only() {
    for files in [SINGLE, THREE_BROKERS] {
        let compose = load(files);
        for (name, svc) in services(&compose) {
            for (address, port) in published_addresses(svc) {
                assert_eq!(address, "127.0.0.1", "{files:?}: {name:?} publishes {port} on {address:?}, not on 127.0.0.1 only");
            }
        }
    }
}

#[test]
fn prometheus_scrapes_every_service_of_services_tsv_by_its_compose_name_and_port() {
    let compose = load(SINGLE);
    let prometheus = service(&compose, "prometheus");
    assert!(published_ports(prometheus).contains(&(9090, 9090)), "prometheus must publish 9090:9090, has {:?}", published_ports(prometheus));
    let args = words(prometheus.get("command"));
    let config_file = args.iter().find_map(|arg| arg.strip_prefix("--config.file=")).unwrap_or("/etc/prometheus/prometheus.yml");
    let config_path = mounted(prometheus, "prometheus", config_file);
    assert_eq!(config_path, repo().join("observability/prometheus.yml"), "prometheus must read observability/prometheus.yml");
    assert!(!args.iter().any(|arg| arg.starts_with("--web.listen-address")), "prometheus listens on 9090, where Grafana's datasource looks");

    let config = read_yaml(&config_path);
    let mut targets = Vec::new();
    for job in sequence(&config, "scrape_configs") {
        let name = job.get("job_name").and_then(Value::as_str).unwrap_or("?");
        let path = job.get("metrics_path").and_then(Value::as_str).unwrap_or("/metrics");
        assert_eq!(path, "/metrics", "job {name}: the services serve GET /metrics");
        assert_eq!(job.get("scheme").and_then(Value::as_str).unwrap_or("http"), "http", "job {name}: the services speak plain HTTP");
        for static_config in sequence(job, "static_configs") {
            targets.extend(sequence(static_config, "targets").iter().filter_map(scalar));
        }
    }
    targets.sort();
    // Each service once: one scraped twice would count double in every `sum`.
    let mut wanted: Vec<String> = runtime::services().iter().map(|entry| format!("{}:{}", entry.name, entry.port)).collect();
    wanted.sort();
    assert_eq!(targets, wanted, "observability/prometheus.yml must scrape each service of services.tsv once, as <compose service>:<port>");
    for entry in runtime::services() {
        let addr = env_value(service(&compose, entry.name), entry.name, "HTTP_ADDR");
        assert!(addr.ends_with(&format!(":{}", entry.port)), "{}: HTTP_ADDR {addr} is not where Prometheus scrapes it", entry.name);
    }
}

#[test]
fn grafana_has_prometheus_as_datasource_and_the_dashboards_for_anonymous_viewers() {
    let compose = load(SINGLE);
    let grafana = service(&compose, "grafana");
    assert!(published_ports(grafana).contains(&(3000, 3000)), "grafana must publish 3000:3000, has {:?}", published_ports(grafana));
    let env = environment(grafana);
    let setting = |name: &str| env.get(name).cloned().flatten();
    assert_eq!(setting("GF_AUTH_ANONYMOUS_ENABLED").as_deref(), Some("true"), "grafana: anonymous access");
    assert_eq!(setting("GF_AUTH_ANONYMOUS_ORG_ROLE").as_deref(), Some("Viewer"), "grafana: anonymous visitors may only view");

    let provisioning = mounted(grafana, "grafana", &setting("GF_PATHS_PROVISIONING").unwrap_or("/etc/grafana/provisioning".into()));
    // One Prometheus datasource, the compose service `prometheus` on the port it listens on.
    let datasources: Vec<Value> = yaml_files(&provisioning.join("datasources"))
        .iter()
        .flat_map(|file| sequence(&read_yaml(file), "datasources").to_vec())
        .filter(|datasource| datasource.get("type").and_then(Value::as_str) == Some("prometheus"))
        .collect();
    assert_eq!(datasources.len(), 1, "grafana's provisioning must have one Prometheus datasource, has {datasources:?}");
    let url = datasources[0].get("url").and_then(Value::as_str).unwrap_or_default();
    assert_eq!(url.trim_end_matches('/'), "http://prometheus:9090", "grafana's Prometheus datasource");
    let image = service(&compose, "prometheus").get("image").and_then(Value::as_str).unwrap_or_default();
    assert!(image.starts_with("prom/prometheus:"), "the compose service prometheus runs {image}");

    // Every dashboard provider reads a folder of the repository; together they load orderflow.json.
    let mut dashboards = BTreeSet::new();
    for file in yaml_files(&provisioning.join("dashboards")) {
        for provider in sequence(&read_yaml(&file), "providers") {
            assert_eq!(provider.get("type").and_then(Value::as_str).unwrap_or("file"), "file", "{}: a file provider", file.display());
            let path = provider.get("options").and_then(|o| o.get("path")).and_then(Value::as_str).expect("a provider's options.path");
            let dir = mounted(grafana, "grafana", path);
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {path} is {}: {e}", file.display(), dir.display()));
            dashboards.extend(entries.map(|entry| entry.expect("a directory entry").path()).filter(|p| p.extension().is_some_and(|e| e == "json")));
        }
    }
    let dashboard = repo().join("observability/grafana/dashboards/orderflow.json");
    assert!(dashboards.contains(&dashboard), "grafana's dashboard providers do not load {} (they load {dashboards:?})", dashboard.display());
    if let Some(home) = setting("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH") {
        assert!(mounted(grafana, "grafana", &home).is_file(), "grafana: the home dashboard {home} is not a file of the repository");
    }
}
