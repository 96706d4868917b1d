//! Giving the memory of a rebuild back to the system.
//!
//! A rebuild (a writer taking over a partition, the deadlines or an accepted history starting
//! from a snapshot) holds the snapshot's text, its decoded parts and the log's records at once,
//! a peak several times the state it leaves behind. glibc keeps what was freed in its arenas
//! for later use, so a service's resident memory stayed at that peak: at 100,000 orders,
//! order-svc's heap was 97 MB and its RSS 254 MiB, and `malloc_trim` (called from a debugger)
//! gave back about 60 MB. So once rebuilds have finished, the service trims its heap.
use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::time::Instant;

/// Rebuilds of one restart or takeover come close together (a writer, the deadlines and the
/// saga metrics of each partition): the heap is trimmed once, this long after the last.
const SETTLE: Duration = Duration::from_secs(2);

static LAST_REBUILT: Mutex<Option<Instant>> = Mutex::new(None);
static TRIM_PENDING: AtomicBool = AtomicBool::new(false);

/// Says a rebuild has finished: the heap is trimmed once no rebuild has finished for
/// [`SETTLE`]. Needs a tokio runtime.
pub(crate) fn rebuilt() {
    *LAST_REBUILT.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    if TRIM_PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        loop {
            let last = LAST_REBUILT.lock().unwrap_or_else(PoisonError::into_inner).unwrap_or_else(Instant::now);
            if last.elapsed() >= SETTLE {
                break;
            }
            tokio::time::sleep_until(last + SETTLE).await;
        }
        TRIM_PENDING.store(false, Ordering::Release);
        // The trim walks every arena: a blocking thread keeps the workers free meanwhile.
        let _ = tokio::task::spawn_blocking(trim).await;
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    let started = std::time::Instant::now();
    // SAFETY: malloc_trim only releases free memory of glibc's own arenas back to the kernel;
    // it takes the arenas' locks itself and touches nothing a caller holds.
    let released = unsafe { libc::malloc_trim(0) } == 1;
    tracing::debug!(released, took_ms = started.elapsed().as_millis() as u64, "heap trimmed after a rebuild");
}

/// Other allocators (musl, macOS) give memory back on their own terms.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
