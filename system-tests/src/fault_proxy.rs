//! A TCP proxy that breaks the network on request, for chaos runs: it forwards every
//! connection to one upstream address and, when told, resets every open connection, refuses
//! new ones for a while, or holds back every chunk it forwards by a latency. Put in front of a
//! broker that advertises the proxy's address (see [`crate::infra::Broker::start_behind`]),
//! every client connection goes through it. Listens on 127.0.0.1 only.
use std::{
    net::SocketAddr,
    os::fd::{AsRawFd, RawFd},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{oneshot, watch},
};

#[derive(Debug, Default)]
struct Faults {
    refuse_until: Option<Instant>,
    delay: Option<(Duration, Instant)>,
}

impl Faults {
    fn refusing(&self) -> bool {
        self.refuse_until.is_some_and(|until| Instant::now() < until)
    }

    fn latency(&self) -> Option<Duration> {
        self.delay.filter(|(_, until)| Instant::now() < *until).map(|(latency, _)| latency)
    }
}

/// The proxy, running on a thread of its own until dropped.
pub struct FaultProxy {
    pub port: u16,
    faults: Arc<Mutex<Faults>>,
    // A new value resets every open connection.
    sever: watch::Sender<u64>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        listener.set_nonblocking(true).expect("non-blocking listener");
        let faults = Arc::new(Mutex::new(Faults::default()));
        let (sever, _) = watch::channel(0u64);
        let (shutdown, stopped) = oneshot::channel();
        let (thread_faults, thread_sever) = (faults.clone(), sever.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("proxy runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                tokio::select! {
                    () = accept_loop(listener, upstream, thread_faults, thread_sever) => {}
                    _ = stopped => {}
                }
            });
        });
        FaultProxy { port, faults, sever, shutdown: Some(shutdown), thread: Some(thread) }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Resets every open connection now (the peers see a connection reset, as when a link or
    /// a NAT entry dies); new connections go through as before.
    pub fn sever(&self) {
        self.sever.send_modify(|generation| *generation += 1);
    }

    /// Resets every open connection and refuses new ones (reset at once) for `period`.
    pub fn refuse_for(&self, period: Duration) {
        self.lock().refuse_until = Some(Instant::now() + period);
        self.sever();
    }

    /// Holds back every chunk forwarded in either direction by `latency`, for `period`.
    pub fn delay_for(&self, latency: Duration, period: Duration) {
        self.lock().delay = Some((latency, Instant::now() + period));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, faults: Arc<Mutex<Faults>>, sever: watch::Sender<u64>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let refusing = faults.lock().unwrap_or_else(|p| p.into_inner()).refusing();
        if refusing {
            reset(client);
            continue;
        }
        let (faults, severed) = (faults.clone(), sever.subscribe());
        tokio::spawn(forward(client, upstream, faults, severed));
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, faults: Arc<Mutex<Faults>>, mut severed: watch::Receiver<u64>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        // The broker is down: the client sees what it would see without the proxy.
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let sockets = [client.as_raw_fd(), server.as_raw_fd()];
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = pump(client_read, server_write, faults.clone()) => {}
        () = pump(server_read, client_write, faults) => {}
        _ = severed.changed() => {
            // The halves are still open here and close when this function returns: with
            // SO_LINGER 0 that close is a reset.
            for socket in sockets {
                set_linger_zero(socket);
            }
        }
    }
}

/// Copies `from` to `to` until either side closes, holding back chunks while a delay is on.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, faults: Arc<Mutex<Faults>>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let latency = faults.lock().unwrap_or_else(|p| p.into_inner()).latency();
        if let Some(latency) = latency {
            tokio::time::sleep(latency).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Closes with SO_LINGER 0, so the peer gets a reset instead of an orderly end of stream.
fn reset(stream: TcpStream) {
    // A zero linger never blocks on drop (tokio deprecates set_linger for the non-zero case).
    set_linger_zero(stream.as_raw_fd());
    drop(stream);
}

fn set_linger_zero(socket: RawFd) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket this task still owns, with a correctly sized struct.
    unsafe {
        libc::setsockopt(
            socket,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
