//! `gender-classifier serve`: a local HTTP service over the same model and detector as `predict`.
//!
//! - `POST /v1/classify`: an image as the body (any content type) or as the file of a
//!   `multipart/form-data` form; answers `predict --json`'s object for it, with `width` and
//!   `height`.
//! - `GET /healthz`: `{"status": "ok", ...}` once the model is loaded.
//! - `GET /`: a page to drop photos on, which shows them with the faces boxed and labelled.
//!
//! The model is loaded once and shared. Every limit is checked before the work it guards: the body
//! size while reading, the image's dimensions from its header before decoding, and the number of
//! requests in the house before reading the body; past them the answer is a 4xx or 503 with a
//! reason, and the server goes on.

mod api;
mod page;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use gc_classify::photos::DetectMode;
use gc_core::Classifier;
use gc_detect::Detector;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

/// What the server accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest image width or height, read from its header before decoding.
    pub max_side: u32,
    /// Largest image width x height, read from its header before decoding.
    pub max_pixels: u64,
    /// Images classified at once; the rest wait their turn.
    pub max_concurrent: usize,
    /// Requests waiting for a turn beyond which new ones get 503 at once, so that a flood of
    /// uploads cannot pile up bodies in memory.
    pub max_waiting: usize,
    /// Time allowed to receive a request's body. A client that opens an upload and stops
    /// sending would otherwise hold its place forever: forty of them kept every later request
    /// at 503.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 20 << 20,
            max_side: 12_000,
            max_pixels: 50_000_000,
            max_concurrent: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_waiting: 32,
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// The loaded model and detector, shared by every request.
pub struct Service {
    model: Box<dyn Classifier>,
    detector: Option<Detector>,
    detect: DetectMode,
    limits: Limits,
    work: Arc<tokio::sync::Semaphore>,
    in_house: AtomicUsize,
}

impl Service {
    pub fn new(
        model: Box<dyn Classifier>,
        detector: Option<Detector>,
        detect: DetectMode,
        limits: Limits,
    ) -> Service {
        Service {
            model,
            detector,
            detect,
            work: Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent.max(1))),
            limits,
            in_house: AtomicUsize::new(0),
        }
    }
}

/// The routes, over `service`.
pub fn router(service: Arc<Service>) -> Router {
    let max_body = service.limits.max_body_bytes;
    Router::new()
        .route("/", get(page::index))
        .route("/healthz", get(api::healthz))
        .route("/v1/classify", post(api::classify))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        // The multipart reader checks this limit too; ours is the same.
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(service)
}

/// How long a stop waits for requests in flight: a body may take the body timeout to arrive, and
/// its classification a few seconds more.
fn grace(limits: &Limits) -> Duration {
    limits.body_timeout + Duration::from_secs(10)
}

/// Serves on `listener` until `shutdown` completes; requests in flight are finished first, for at
/// most the body timeout plus 10 s. Without that bound one client holding a connection open with its headers
/// unfinished kept the server from stopping for as long as it liked.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = grace(&service.limits);
    let (tell, told) = tokio::sync::watch::channel(false);
    let graceful = axum::serve(listener, router(service))
        .with_graceful_shutdown(async move {
            let mut told = told;
            let _ = told.wait_for(|&stop| stop).await;
        })
        .into_future();
    let deadline = async move {
        shutdown.await;
        let _ = tell.send(true);
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = graceful => served,
        () = deadline => {
            tracing::warn!(
                "stopped with connections still open after {} s",
                grace.as_secs()
            );
            Ok(())
        }
    }
}

/// A server on its own runtime and thread: what the command line and the tests start.
pub struct Running {
    pub addr: SocketAddr,
    limits: Limits,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// Binds `addr` (port 0 picks a free one) and starts serving.
    pub fn start(addr: &str, service: Service) -> std::io::Result<Running> {
        // Classification runs on the blocking pool, at most `max_concurrent` at once (the
        // semaphore); capping the pool there too reuses the same threads, so memory held per
        // thread (allocator arenas, model scratch buffers) stays at that many threads' worth.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("gc-serve")
            .max_blocking_threads(service.limits.max_concurrent.max(1))
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = service.limits;
        let service = Arc::new(service);
        let thread = std::thread::Builder::new()
            .name("gc-serve".into())
            .spawn(move || {
                runtime.block_on(serve(listener, service, async {
                    let _ = stopped.await;
                }))
            })?;
        Ok(Running {
            addr,
            limits,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops accepting, finishes the requests in flight, and returns.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.shut()
    }

    /// Serves until the process gets Ctrl-C (SIGINT) or SIGTERM, then stops as [`Running::stop`].
    /// A second signal stops at once: the error then says so, and the requests in flight are
    /// dropped with the process.
    pub fn wait_for_signal(mut self) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut term = runtime.block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        })?;
        let signal = async move |term: &mut tokio::signal::unix::Signal| {
            tokio::select! {
                r = tokio::signal::ctrl_c() => r,
                _ = term.recv() => Ok(()),
            }
        };
        runtime.block_on(signal(&mut term))?;
        tracing::info!(
            "stopping: finishing the requests in flight (at most {} s; Ctrl-C again stops now)",
            grace(&self.limits).as_secs()
        );
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let result = runtime.block_on(async {
            let joined = tokio::task::spawn_blocking(move || thread.join());
            tokio::select! {
                joined = joined => match joined {
                    Ok(Ok(served)) => served,
                    _ => Err(std::io::Error::other("the server thread panicked")),
                },
                _ = signal(&mut term) => Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "stopped at a second signal, with requests in flight",
                )),
            }
        });
        // Dropping the runtime would wait for the join above, that is for the grace period.
        runtime.shutdown_background();
        result
    }

    fn shut(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("the server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shut();
    }
}
