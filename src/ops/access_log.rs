//! Every request, observed once (by the edge, `ops::edge`): it gets an id
//! (returned in `x-request-id`, and at hand for log lines written while it
//! runs: see [`current_request_id`]), is counted in the metrics, and, at
//! `info`, leaves one JSON line in the access log: time, requestId, method,
//! route (the matched template, never the path or query a client sent),
//! status, durationMs, clientIp, and userId / keyId when a guard resolved a
//! principal. Nothing else of the request is read, so no key, token,
//! password, hash or email can reach the log.
//!
//! Lines are handed to a thread of their own (`tracing-appender`'s
//! non-blocking writer) and written from there in batches: a request never
//! waits on the log. Should that thread fall more than 128k lines behind,
//! further lines are dropped rather than slow the requests down.

use std::{
    future::Future,
    io::Write,
    net::IpAddr,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::Instant,
};

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, Method},
    response::Response,
};
use chrono::{DateTime, SecondsFormat, Utc};
use loco_rs::{config::Logger, logger::LogLevel};
use serde::Serialize;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use uuid::Uuid;

use super::metrics::{method_label, RouteLabel};
use crate::auth::{extract::client_ip_of, AuthState};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// A request id sent by a client (or a proxy) is kept when it is this short
/// and made of `[A-Za-z0-9._:-]`: no `@`, so an email cannot pass for one.
const MAX_REQUEST_ID_CHARS: usize = 128;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// The id of the request the current task is answering, if any: for error
/// lines, so that they can be found from a response's `x-request-id`. (A
/// task-local rather than a tracing span: a span per request cost five
/// allocations and its fields' formatting, for the few requests that log.)
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

/// Who a guard found behind the request's credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    /// Set when the credential was an API key.
    pub key_id: Option<Uuid>,
}

/// The access log's destination: none until [`AccessLog::write_to`].
#[derive(Default)]
pub struct AccessLog {
    writer: OnceLock<NonBlocking>,
    /// Dropping it writes what is still queued and ends the writer's thread.
    guard: Mutex<Option<WorkerGuard>>,
}

impl AccessLog {
    /// Whether the logger (`logger:` of the config, `LOG_LEVEL`) lets `info`
    /// lines through: then requests are logged.
    pub fn wanted(logger: &Logger) -> bool {
        logger.enable
            && matches!(
                logger.level,
                LogLevel::Info | LogLevel::Debug | LogLevel::Trace
            )
    }

    /// Sends every line from now on to `out`, from a thread of its own. Only
    /// the first destination counts: false if there was one already.
    pub fn write_to(&self, out: impl Write + Send + 'static) -> bool {
        if self.is_on() {
            return false;
        }
        let (writer, guard) = NonBlockingBuilder::default()
            .thread_name("access-log")
            .finish(out);
        if self.writer.set(writer).is_err() {
            return false;
        }
        *self.guard.lock().unwrap_or_else(PoisonError::into_inner) = Some(guard);
        true
    }

    pub fn is_on(&self) -> bool {
        self.writer.get().is_some()
    }

    /// Writes what is queued and stops logging (at shutdown).
    pub fn flush(&self) {
        let guard = self
            .guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(guard);
    }

    fn write(&self, line: &AccessLine<'_>) {
        let Some(writer) = self.writer.get() else {
            return;
        };
        let mut bytes = Vec::with_capacity(256);
        if serde_json::to_writer(&mut bytes, line).is_ok() {
            bytes.push(b'\n');
            // The non-blocking writer only queues the line; it cannot fail here.
            let _ = writer.clone().write_all(&bytes);
        }
    }
}

/// One line of the access log.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccessLine<'a> {
    time: String,
    request_id: &'a str,
    method: &'a str,
    route: &'a str,
    status: u16,
    duration_ms: f64,
    client_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<Uuid>,
}

/// The request's id: the one it came with when that one is safe to log and
/// echo, else a new UUID.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID_HEADER)
        .filter(|value| {
            let bytes = value.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= MAX_REQUEST_ID_CHARS
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        })
        .cloned()
        .unwrap_or_else(|| {
            let mut buffer = Uuid::encode_buffer();
            let id = Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
            HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("none"))
        })
}

/// One request under observation, from its arrival to its response: its id
/// (kept from the client when safe, else a fresh UUID), and for the access
/// log, the time it arrived and who sent it.
pub struct Observed {
    started: Instant,
    request_id: HeaderValue,
    method: Method,
    logged: Option<(DateTime<Utc>, Option<IpAddr>)>,
}

impl Observed {
    pub fn begin(state: &AuthState, request: &Request) -> Self {
        let logged = state.access_log.is_on().then(|| {
            let client_ip = client_ip_of(
                request.headers(),
                request.extensions(),
                &state.settings.trusted_proxies,
            );
            (Utc::now(), client_ip)
        });
        Self {
            started: Instant::now(),
            request_id: request_id(request.headers()),
            method: request.method().clone(),
            logged,
        }
    }

    /// Runs `answer` with the request's id at hand ([`current_request_id`]).
    pub async fn scope<F: Future>(&self, answer: F) -> F::Output {
        let id = Arc::from(self.request_id.to_str().unwrap_or_default());
        REQUEST_ID.scope(id, answer).await
    }

    /// Counts the request in the metrics, writes its line, and answers its id
    /// in `x-request-id`.
    pub fn finish(
        self,
        state: &AuthState,
        route: &RouteLabel,
        principal: Option<Principal>,
        response: &mut Response,
    ) {
        let elapsed = self.started.elapsed();
        let status = response.status().as_u16();
        state
            .metrics
            .request(&self.method, route, status, elapsed.as_secs_f64());
        if let Some((arrived, client_ip)) = self.logged {
            state.access_log.write(&AccessLine {
                time: timestamp(arrived),
                request_id: self.request_id.to_str().unwrap_or_default(),
                method: method_label(&self.method),
                route: route.as_str(),
                status,
                // Whole microseconds, so the number prints short.
                duration_ms: u32::try_from(elapsed.as_micros()).map_or(f64::MAX, f64::from)
                    / 1000.0,
                client_ip,
                user_id: principal.map(|principal| principal.user_id),
                key_id: principal.and_then(|principal| principal.key_id),
            });
        }
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER, self.request_id);
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(id).unwrap());
        headers
    }

    #[tokio::test]
    async fn the_request_id_is_at_hand_while_the_request_runs() {
        assert!(current_request_id().is_none());
        let seen = REQUEST_ID
            .scope(Arc::from("edge-1"), async { current_request_id() })
            .await;
        assert_eq!(seen.as_deref(), Some("edge-1"));
    }

    #[test]
    fn a_plain_request_id_is_kept_and_anything_else_replaced() {
        assert_eq!(request_id(&headers("abc-123_x.y:z")), "abc-123_x.y:z");
        for unsafe_id in ["ada@example.com", "a b", &"x".repeat(129)] {
            let replaced = request_id(&headers(unsafe_id));
            assert_ne!(replaced, unsafe_id);
            assert!(Uuid::parse_str(replaced.to_str().unwrap()).is_ok());
        }
        let fresh = request_id(&HeaderMap::new());
        assert!(Uuid::parse_str(fresh.to_str().unwrap()).is_ok());
    }
}
