//! The HTTP server, bounded against slow and hostile clients: request headers
//! must arrive within `HEADER_TIMEOUT` (hyper starts that clock whenever a
//! connection waits for a request head, so an idle keep-alive connection closes
//! after it too; `REQUEST_TIMEOUT`, 408 after, is the edge's: `ops::edge`),
//! at most `MAX_CONNECTIONS` connections are served at once (more wait in the
//! kernel's backlog), and after SIGTERM in-flight requests get
//! `SHUTDOWN_TIMEOUT` before their connections are dropped. With TLS, the
//! handshake happens in the connection's own task, within `HEADER_TIMEOUT`
//! too: a client that never finishes it is dropped, and holds up nobody else.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{body::Body, http::Request, Router};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{
        conn::auto::Builder,
        graceful::{GracefulShutdown, Watcher},
    },
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::Semaphore,
};
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt};

use crate::settings::Http;

/// After a failed `accept` (out of file descriptors, say), wait this long
/// rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` (over TLS when `tls` is given) until
/// `shutdown` completes, then lets in-flight requests finish for at most
/// `http.shutdown_timeout`.
///
/// # Errors
/// Never for a single connection's failure; only if the server cannot run.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    http: &Http,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let router = if tls.is_some() {
        super::tls::with_hsts(router)
    } else {
        router
    };
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(http.header_timeout));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(http.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = make_service
            .call(peer)
            .await
            .unwrap_or_else(|never: Infallible| match never {})
            .map_request(into_axum_body as IntoAxumBody);
        let service = TowerToHyperService::new(service);
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        let handshake_timeout = http.header_timeout;
        tokio::spawn(async move {
            match tls {
                None => serve_connection(&builder, stream, service, watcher).await,
                Some(tls) => {
                    // A failed or unfinished handshake (plain HTTP on the TLS
                    // port included) just closes the connection.
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(handshake_timeout, tls.accept(stream)).await
                    {
                        serve_connection(&builder, stream, service, watcher).await;
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(http.shutdown_timeout) => {
            tracing::warn!(
                timeout = ?http.shutdown_timeout,
                "in-flight requests did not finish before the shutdown deadline; dropping them"
            );
        }
    }
    Ok(())
}

type IntoAxumBody = fn(Request<Incoming>) -> Request<Body>;

fn into_axum_body(request: Request<Incoming>) -> Request<Body> {
    request.map(Body::new)
}

/// The router as one connection serves it: with the peer's address.
type ConnectionService = TowerToHyperService<
    tower::util::MapRequest<
        axum::middleware::AddExtension<Router, axum::extract::ConnectInfo<SocketAddr>>,
        IntoAxumBody,
    >,
>;

/// Serves one connection, HTTP/1.1 or h2, until it ends or shutdown asks.
async fn serve_connection<I>(
    builder: &Builder<TokioExecutor>,
    io: I,
    service: ConnectionService,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    // A client that resets or times out ends its own connection; nothing to report.
    let _ = watcher.watch(connection).await;
}
