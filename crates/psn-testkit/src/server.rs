//! Serving an axum router with hyper directly, so that a handler can make the server close
//! the connection without sending any response.
//!
//! A response carrying the [`CloseConnection`] extension is never written: the hyper service
//! returns an error instead, and hyper closes the connection. The client sees the connection
//! end before a response (`IncompleteMessage`), never a success.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tower::ServiceExt;

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CloseConnection;

/// A response that closes the connection without answering.
pub(crate) fn close_connection() -> Response {
    let mut response = ().into_response();
    response.extensions_mut().insert(CloseConnection);
    response
}

#[derive(Debug)]
struct ConnectionDropped;

impl std::fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fake")
    }
}

impl std::error::Error for ConnectionDropped {}

/// Binds 127.0.0.1:0 and serves `router` on a background task; returns the address.
pub(crate) async fn serve(router: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let router = router.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                        let router = router.clone();
                        async move {
                            // The request runs on its own task, so a client that gives up (timeout)
                            // does not cancel a write in progress: like a real server, the fake
                            // finishes what it started.
                            let request = request.map(Body::new);
                            let task = tokio::spawn(async move {
                                let result: Result<Response, Infallible> =
                                    router.oneshot(request).await;
                                result
                            });
                            match task.await {
                                Ok(Ok(response))
                                    if response.extensions().get::<CloseConnection>().is_none() =>
                                {
                                    Ok(response)
                                }
                                _ => Err(ConnectionDropped),
                            }
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Starts a fake with `start` on its own thread and current-thread runtime, for tests without a
/// tokio runtime (for example ones that run the `psn` binary), and returns its handle. The fake
/// runs until the process ends. `name` names the thread and the panics.
pub(crate) fn start_in_thread<T, F, Fut>(name: &'static str, start: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("a runtime for {name}: {e}"));
            runtime.block_on(async move {
                let _ = tx.send(start().await);
                std::future::pending::<()>().await;
            });
        })
        .unwrap_or_else(|e| panic!("a thread for {name}: {e}"));
    rx.recv().unwrap_or_else(|_| panic!("{name} did not start"))
}
