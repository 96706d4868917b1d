//! Every loop runs under a supervisor: when it fails (an error, a panic, or an end it should
//! not have) it is started again, fresh, which also rebuilds whatever state it kept from the
//! log. Each run is a task of its own, so a panic ends that run only: it is logged, counted
//! (`orderflow_loop_restarts_total{cause="panic"}`) and the loop restarts with its back-off.
//!
//! The supervisor also says whether its loop is up: [`Loops`] holds the state of every loop of
//! the service, which `/ready` reports (not ready while a loop is down, waiting to restart).
use crate::{observe::metrics as m, shared::LoopKind};
use std::{
    collections::BTreeMap,
    fmt::Display,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A run that lasted this long was healthy: the next failure starts the back-off afresh.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Why a run of a loop ended (the `cause` label of `orderflow_loop_restarts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Error,
    Panic,
    Ended,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Error => "error",
            Cause::Panic => "panic",
            Cause::Ended => "ended",
        }
    }
}

/// Where a supervised loop is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoopState {
    /// Registered, not started yet (the service starts its loops once it serves HTTP).
    NotStarted,
    /// A run is going on.
    Running,
    /// The last run ended (`cause`, `reason`); the next starts after the back-off.
    Restarting { cause: Cause, reason: String },
}

/// One loop as `/ready` sees it.
#[derive(Debug, Clone)]
pub struct LoopStatus {
    pub kind: LoopKind,
    pub state: LoopState,
    /// Since when the loop is in `state`.
    pub since: Instant,
    /// Runs that ended so far.
    pub restarts: u64,
}

/// The supervised loops of a service, by label.
#[derive(Clone, Default)]
pub struct Loops(Arc<Mutex<BTreeMap<String, LoopStatus>>>);

impl Loops {
    fn set(&self, label: &str, kind: LoopKind, state: LoopState, ended: bool) {
        let mut loops = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let status = loops.entry(label.to_string()).or_insert(LoopStatus { kind, state: LoopState::NotStarted, since: Instant::now(), restarts: 0 });
        status.state = state;
        status.since = Instant::now();
        if ended {
            status.restarts += 1;
        }
    }

    /// Adds a loop, not started yet (its supervisor adds it too, when it starts).
    pub fn register(&self, label: &str, kind: LoopKind) {
        self.set(label, kind, LoopState::NotStarted, false);
    }

    /// Every loop and where it is, by label.
    pub fn snapshot(&self) -> BTreeMap<String, LoopStatus> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A run of a loop, as a task of its own; aborted when the supervisor itself is dropped, so
/// no run outlives it.
struct Run<E>(tokio::task::JoinHandle<Result<(), E>>);

impl<E> Drop for Run<E> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The text of a panic's payload (what `panic!` was given, when it is text).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str)).unwrap_or("(not a text)")
}

/// Runs `make()` again whenever a run of it ends (an error, a panic, or `Ok`), each run as a
/// task of its own, with capped exponential back-off; `loops` tracks its state under `label`.
pub async fn supervise<F, Fut, E>(label: String, kind: LoopKind, loops: Loops, make: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = tokio::time::Instant::now();
        let mut run = Run(tokio::spawn(make()));
        loops.set(&label, kind, LoopState::Running, false);
        let (cause, reason) = match (&mut run.0).await {
            Ok(Ok(())) => (Cause::Ended, "the loop ended".to_string()),
            Ok(Err(error)) => (Cause::Error, error.to_string()),
            Err(join_error) if join_error.is_panic() => {
                let payload = join_error.into_panic();
                (Cause::Panic, format!("panicked: {}", panic_message(&*payload)))
            }
            Err(join_error) => (Cause::Error, format!("the loop's task was cancelled: {join_error}")),
        };
        drop(run);
        match cause {
            Cause::Ended => tracing::warn!(%label, kind = kind.as_str(), "loop ended; restarting"),
            Cause::Error => tracing::error!(%label, kind = kind.as_str(), error = %reason, "loop failed; restarting"),
            Cause::Panic => tracing::error!(%label, kind = kind.as_str(), error = %reason, "loop panicked; restarting"),
        }
        m::loop_restarted(kind, &label, cause.as_str());
        loops.set(&label, kind, LoopState::Restarting { cause, reason }, true);
        if started.elapsed() > HEALTHY_RUN {
            backoff = FIRST_BACKOFF;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Waits (bounded) until the loop labelled `label` is in a state `done` accepts.
    async fn until(loops: &Loops, label: &str, done: impl Fn(&LoopStatus) -> bool) -> LoopStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = loops.snapshot().get(label).filter(|status| done(status)) {
                return status.clone();
            }
            assert!(Instant::now() < deadline, "{label} never got there: {:?}", loops.snapshot().get(label));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_loop_that_panics_is_restarted_and_runs_again() {
        let loops = Loops::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let (running, mut second_run) = tokio::sync::mpsc::unbounded_channel();
        let supervisor = tokio::spawn(supervise("panicky".into(), LoopKind::Policy, loops.clone(), {
            let runs = runs.clone();
            move || {
                let (runs, running) = (runs.clone(), running.clone());
                async move {
                    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("boom in the first run");
                    }
                    let _ = running.send(());
                    // A healthy loop runs until it fails; this one never does.
                    std::future::pending::<Result<(), String>>().await
                }
            }
        }));
        tokio::time::timeout(Duration::from_secs(10), second_run.recv()).await.expect("the loop ran again after its panic").expect("a run");
        let status = until(&loops, "panicky", |status| status.state == LoopState::Running).await;
        assert_eq!(status.restarts, 1, "one run ended: the one that panicked");
        assert_eq!(status.kind, LoopKind::Policy);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(!supervisor.is_finished(), "the supervisor survives the panic");
        supervisor.abort();
    }

    #[tokio::test]
    async fn a_failed_loop_is_restarting_until_its_next_run_and_says_why() {
        let loops = Loops::default();
        let (go_on, gate) = tokio::sync::watch::channel(false);
        let supervisor = tokio::spawn(supervise("failing".into(), LoopKind::Command, loops.clone(), move || {
            let mut gate = gate.clone();
            async move {
                // Fails until the test lets it run, then runs (until it fails, which it does not).
                if !*gate.borrow_and_update() {
                    return Err("no broker".to_string());
                }
                std::future::pending::<Result<(), String>>().await
            }
        }));
        let status = until(&loops, "failing", |status| matches!(status.state, LoopState::Restarting { .. })).await;
        assert_eq!(status.state, LoopState::Restarting { cause: Cause::Error, reason: "no broker".into() });
        go_on.send_replace(true);
        let status = until(&loops, "failing", |status| status.state == LoopState::Running && status.restarts >= 1).await;
        assert_eq!(status.kind, LoopKind::Command);
        supervisor.abort();
    }

    #[test]
    fn a_panics_text_is_read_from_str_and_string_payloads() {
        assert_eq!(panic_message(&"static text"), "static text");
        assert_eq!(panic_message(&String::from("formatted 7")), "formatted 7");
        assert_eq!(panic_message(&7_u32), "(not a text)");
    }
}
