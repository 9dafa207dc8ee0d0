//! Serving the gateway on a TCP listener, with the connection limits `axum::serve` lacks:
//! a slow or idle client cannot hold a connection (and a file descriptor) for long, and
//! many of them cannot starve everyone else.
//!
//! - **Header read timeout:** a request head must arrive within `header_read_timeout`,
//!   counted from when the connection starts waiting for it (hyper's timer), so a client
//!   dribbling a header byte by byte is cut off.
//! - **Idle timeout:** a connection with no request for `idle_timeout` (a fresh one, or a
//!   keep-alive one after its last response) is closed.
//! - **Connection cap:** at `max_connections`, a new connection evicts the oldest one that
//!   is not serving a request (idle, or still sending its head); if every one is busy, the
//!   new connection is closed at once. Requests in progress are never cut.
//! - **Graceful shutdown:** on the shutdown signal no new connection is accepted, idle ones
//!   close, and requests in flight finish.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;
use tower::ServiceExt as _;
use tracing::{debug, warn};

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The longest a client may take to send a request head (default 10 s).
    pub header_read_timeout: Duration,
    /// The longest a connection may go without a request (default 5 s).
    pub idle_timeout: Duration,
    /// Connections open at once (default 4,096; lowered to fit the descriptor limit).
    pub max_connections: usize,
}

/// Default [`ConnectionLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ConnectionLimits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`ConnectionLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Raises this process's open-file soft limit to its hard limit (each connection holds a
/// descriptor) and returns the soft limit now in force, if it could be read.
pub fn raise_descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(error) => {
                warn!(error = %error, "could not raise the open-file limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// One open connection, as the accept loop knows it.
struct Tracked {
    /// Requests being served on it now.
    busy: Arc<Activity>,
    abort: AbortHandle,
}

/// What a connection's requests tell its watchdog.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    /// Bumped at every request start and end.
    generation: AtomicU64,
    changed: Notify,
}

impl Activity {
    fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
    }

    fn finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Resolves once the connection has had no request for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                self.changed.notified().await;
                continue;
            }
            let seen = self.generation.load(Ordering::SeqCst);
            tokio::select! {
                () = tokio::time::sleep(timeout) => {
                    if self.generation.load(Ordering::SeqCst) == seen {
                        return;
                    }
                }
                () = self.changed.notified() => {}
            }
        }
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct Connections {
    open: Mutex<BTreeMap<u64, Tracked>>,
    /// Signalled when the last connection closes.
    drained: Notify,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Tracked>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes room for one more: closes the oldest connection serving no request. `false`
    /// when every connection is busy.
    fn make_room(&self, max: usize) -> bool {
        let mut open = self.lock();
        if open.len() < max {
            return true;
        }
        let idle = open
            .iter()
            .find(|(_, tracked)| tracked.busy.in_flight.load(Ordering::SeqCst) == 0)
            .map(|(id, _)| *id);
        match idle.and_then(|id| open.remove(&id)) {
            Some(evicted) => {
                evicted.abort.abort();
                true
            }
            None => false,
        }
    }
}

/// Removes its connection from the table however the connection's task ends (finished,
/// failed or aborted).
struct Registration {
    id: u64,
    connections: Arc<Connections>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        open.remove(&self.id);
        if open.is_empty() {
            self.connections.drained.notify_waiters();
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then lets the
/// requests in flight finish. Each request carries the peer's address
/// ([`ConnectInfo<SocketAddr>`]) like `into_make_service_with_connect_info`.
///
/// # Errors
/// None so far: accept failures (e.g. out of descriptors) are logged and retried.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let connections = Arc::new(Connections::default());
    let (stop, stopped) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let max = limits.max_connections.max(1);
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, most likely: let connections close, then go on.
                    warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if !connections.make_room(max) {
            debug!("every connection is busy: closing the new one");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let activity = Arc::new(Activity::default());
        let registration = Registration {
            id,
            connections: Arc::clone(&connections),
        };
        let task = connection(
            builder.clone(),
            stream,
            remote,
            app.clone(),
            Arc::clone(&activity),
            limits.idle_timeout,
            stopped.clone(),
            registration,
        );
        // Registered under the lock before the task can finish and deregister itself.
        let mut open = connections.lock();
        let abort = tokio::spawn(task).abort_handle();
        open.insert(
            id,
            Tracked {
                busy: activity,
                abort,
            },
        );
    }
    drop(listener);
    let _ = stop.send(true);
    loop {
        let drained = connections.drained.notified();
        if connections.lock().is_empty() {
            break;
        }
        drained.await;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    builder: hyper::server::conn::http1::Builder,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    app: axum::Router,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    mut stopped: watch::Receiver<bool>,
    registration: Registration,
) {
    let _registration = registration;
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let (app, activity) = (app.clone(), Arc::clone(&activity));
            activity.started();
            request.extensions_mut().insert(ConnectInfo(remote));
            async move {
                let response = app
                    .oneshot(request.map(axum::body::Body::new))
                    .await
                    .unwrap_or_else(|never: Infallible| match never {});
                activity.finished();
                Ok::<_, Infallible>(response)
            }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    debug!(error = %error, "connection ended");
                }
                break;
            }
            () = activity.idle_for(idle_timeout), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            changed = stopped.changed(), if !closing => {
                if changed.is_err() || *stopped.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
