//! The binary refuses to start with a broken templates folder: it exits non-zero, before it
//! connects to anything, and says on stderr which file is wrong and why.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for a loaded machine; the refusal itself takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(30);

/// A folder of its own under the temp folder holding copies of the built-in templates.
fn folder_with_built_in_templates(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("notify-svc-start-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("create the folder");
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for entry in std::fs::read_dir(&built_in).expect("notify-svc/templates") {
        let path = entry.expect("an entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("a file name"))).expect("copy a template");
    }
    dir
}

/// An address where nothing listens: nothing may be reached even if the start went further.
fn unused_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("its address").to_string();
    drop(listener);
    address
}

/// Starts notify-svc with `dir` as its templates folder and waits for it to exit; its exit
/// status and stderr. Fails if it is still running at the deadline.
fn start_with(dir: &Path) -> (std::process::ExitStatus, String) {
    let run_dir = dir.with_extension("run");
    let unused = unused_address();
    let mut child = Command::new(env!("CARGO_BIN_EXE_notify-svc"))
        .env("NOTIFY_TEMPLATES_DIR", dir)
        .env("KAFKA_BROKERS", &unused)
        .env("SCHEMA_REGISTRY_URL", format!("http://{unused}"))
        .env("DATABASE_URL", format!("sqlite://{}/notify.db?mode=rwc", run_dir.display()))
        .env("RUN_DIR", &run_dir)
        .env("HTTP_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("notify-svc starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            child.kill().ok();
            child.wait().ok();
            panic!("notify-svc still runs after {DEADLINE:?} with a broken templates folder");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
    }
    // The service's run folder (its database, its files) is made by the start that the
    // refusal comes before.
    let set_up = run_dir.exists();
    std::fs::remove_dir_all(dir).ok();
    std::fs::remove_dir_all(&run_dir).ok();
    assert!(!set_up, "nothing is set up before the refusal, yet {} exists: {stderr}", run_dir.display());
    (status, stderr)
}

#[test]
fn a_template_that_does_not_parse_stops_the_start() {
    let dir = folder_with_built_in_templates("syntax");
    std::fs::write(dir.join("order_shipped.sms.txt"), "Order {{ order_id }}\nshipped{% if %}.\n").expect("break a template");
    let (status, stderr) = start_with(&dir);
    assert!(!status.success(), "{status}: {stderr}");
    assert!(stderr.contains("notify-svc does not start"), "{stderr}");
    assert!(stderr.contains(&format!("{}, line 2: syntax error", dir.join("order_shipped.sms.txt").display())), "{stderr}");
}

#[test]
fn a_missing_template_stops_the_start() {
    let dir = folder_with_built_in_templates("missing");
    std::fs::remove_file(dir.join("stock_low.email.txt")).expect("remove a template");
    let (status, stderr) = start_with(&dir);
    assert!(!status.success(), "{status}: {stderr}");
    assert!(stderr.contains(&format!("{}: no such template", dir.join("stock_low.email.txt").display())), "{stderr}");
}
