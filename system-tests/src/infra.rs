//! A test's own broker and schema registry, for tests that must stop the broker (the shared
//! one that `scripts/test.sh` provides belongs to every other test and is never touched).
use crate::{free_port, signal_child, spawn, target_dir};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A Nisshi broker on a free port with durable (SQLite) storage in its own folder, so it can
/// be stopped and started again with its topics and records intact.
pub struct Broker {
    pub port: u16,
    /// What the broker tells clients to connect to (its own address unless it runs behind a proxy).
    advertised: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Broker {
    pub fn start(dir: &Path) -> Broker {
        let port = free_port();
        Broker::start_behind(dir, port, &format!("127.0.0.1:{port}"))
    }

    /// A broker on `port` that advertises `advertised` (e.g. a [`crate::fault_proxy`] in front
    /// of it), so that every client connection, not only the bootstrap one, goes there.
    pub fn start_behind(dir: &Path, port: u16, advertised: &str) -> Broker {
        std::fs::create_dir_all(dir).expect("broker folder");
        let mut broker = Broker { port, advertised: advertised.to_string(), dir: dir.to_path_buf(), child: None };
        broker.start_again();
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the process (again, on the same port and storage) and waits until it listens.
    pub fn start_again(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("nisshi.log")).expect("broker log");
        let mut command = Command::new("nisshi");
        command
            .arg("broker")
            // nisshi resolves the SQLite path against its working directory.
            .current_dir(&self.dir)
            .env("LISTENER_URL", format!("tcp://{}", self.address()))
            .env("ADVERTISED_LISTENER_URL", format!("tcp://{}", self.advertised))
            .env("STORAGE_ENGINE", "sqlite://nisshi.db")
            .env("GROUP_INITIAL_REBALANCE_DELAY", "100ms")
            // nisshi reads these itself; the test's values are not meant for it.
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("SCHEMA_REGISTRY")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        self.child = Some(spawn(command));
        wait_for_tcp(&self.address(), Duration::from_secs(60));
    }

    /// SIGSTOP: the broker keeps its connections open and answers nothing, like a host that
    /// hangs; [`Broker::thaw`] lets it go on.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(child) = &self.child {
            signal_child(child, signal);
        }
    }

    /// SIGKILL, like a crashed or unplugged broker.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// This repo's schema registry against a given broker, on a free port; its state is the
/// broker's `_schemas` topic, so it can be stopped and started again on the same port.
pub struct Registry {
    pub url: String,
    port: u16,
    brokers: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Registry {
    pub fn start(brokers: &str, dir: &Path) -> Registry {
        let port = free_port();
        let mut registry =
            Registry { url: format!("http://127.0.0.1:{port}"), port, brokers: brokers.to_string(), dir: dir.to_path_buf(), child: None };
        registry.start_again();
        registry
    }

    /// Starts the process (again, on the same port) and waits until it answers.
    pub fn start_again(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("schema-registry.log")).expect("registry log");
        let mut command = Command::new(target_dir().join("schema-registry"));
        command
            .env("KAFKA_BROKERS", &self.brokers)
            .env("HTTP_ADDR", format!("127.0.0.1:{}", self.port))
            .env("SCHEMAS_TOPIC", "_schemas")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        self.child = Some(spawn(command));
        let deadline = Instant::now() + Duration::from_secs(60);
        while crate::reqwest::blocking_get_status(&format!("{}/subjects", self.url)).ok() != Some(200) {
            assert!(Instant::now() < deadline, "schema registry did not come up; see {}", self.dir.join("schema-registry.log").display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: the registry is gone until [`Registry::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for_tcp(address: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {address} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
