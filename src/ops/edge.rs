//! The edge: what every request goes through around routing, in one service
//! with one future. Outermost first: the request gets its id and is counted
//! and logged (`access_log`), whatever answers it; oversized headers and URIs
//! are refused; it has `REQUEST_TIMEOUT` to be answered (408 after); a
//! response that found the database unreachable makes the next requests fail
//! fast; a rate-limited key's response carries its `RateLimit-*` headers.
//!
//! One hand-written service rather than a `from_fn` middleware per concern:
//! each of those boxed its future and its `Next` and cloned the service
//! inside it on every request. (With the other changes of the same commits,
//! a `/health` request went from 86 allocations to 36: a malloc uprobe over
//! 20,000 requests; README, "Benchmark".)
//!
//! Routing reports back through [`RequestNotes`], an extension the edge puts
//! on the request: [`RecordRouteLayer`], inside routing, notes the matched
//! template, and the guards note the principal and the key's rate-limit usage.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    extract::{MatchedPath, Request},
    response::{IntoResponse, Response},
};
use futures_util::future::Either;
use tower::{Layer, Service};

use super::{
    access_log::{Observed, Principal},
    metrics::RouteLabel,
};
use crate::{
    auth::{rate_limit::Usage, AuthState},
    controllers,
    error::{ApiError, DatabaseUnreachable},
};

/// Wraps the router in the [`Edge`].
#[derive(Clone)]
pub struct EdgeLayer {
    state: Arc<AuthState>,
}

impl EdgeLayer {
    pub fn new(state: Arc<AuthState>) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    state: Arc<AuthState>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    /// The inner service is called here, so that the future holds only its
    /// future (it is moved whole a few times; the smaller the better).
    fn call(&mut self, mut request: Request) -> Self::Future {
        let state = self.state.clone();
        let notes = RequestNotes::default();
        request.extensions_mut().insert(notes.clone());
        let observed = Observed::begin(&state, &request);
        let answer = match controllers::oversized(&request) {
            Some(refusal) => Either::Left(std::future::ready(Ok(refusal.into_response()))),
            None => Either::Right(self.inner.call(request)),
        };
        Box::pin(async move {
            let timeout = state.settings.http.request_timeout;
            let mut response = observed.scope(within(timeout, answer)).await;
            if let Some(DatabaseUnreachable { lost }) = response.extensions().get() {
                state.database.report(*lost);
            }
            if let Some(usage) = notes.0.rate_limit.get() {
                usage.insert_headers(response.headers_mut());
            }
            let principal = notes.0.principal.get().copied();
            observed.finish(&state, &notes.route(), principal, &mut response);
            Ok(response)
        })
    }
}

/// 408 in the error shape when `answer` takes longer than `timeout`.
async fn within(
    timeout: Duration,
    answer: impl Future<Output = Result<Response, Infallible>>,
) -> Response {
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_elapsed) => ApiError::RequestTimeout.into_response(),
    }
}

/// What routing and the guards learn about a request, for the edge: the
/// matched route template, the principal, and the usage of a rate-limited key.
#[derive(Clone, Default)]
pub struct RequestNotes(Arc<Notes>);

#[derive(Default)]
struct Notes {
    route: OnceLock<MatchedPath>,
    principal: OnceLock<Principal>,
    rate_limit: OnceLock<Usage>,
}

impl RequestNotes {
    /// Who the request's credential belongs to (the first guard's answer stands).
    pub fn principal(&self, principal: Principal) {
        let _ = self.0.principal.set(principal);
    }

    /// Where the request's key stands against its rate limit.
    pub fn rate_limit(&self, usage: Usage) {
        let _ = self.0.rate_limit.set(usage);
    }

    fn route(&self) -> RouteLabel {
        self.0.route.get().map_or(RouteLabel::Unmatched, |path| {
            RouteLabel::Matched(path.clone())
        })
    }
}

/// Inside routing: notes the matched route's template for the edge.
#[derive(Clone, Copy, Default)]
pub struct RecordRouteLayer;

impl<S> Layer<S> for RecordRouteLayer {
    type Service = RecordRoute<S>;

    fn layer(&self, inner: S) -> RecordRoute<S> {
        RecordRoute(inner)
    }
}

#[derive(Clone)]
pub struct RecordRoute<S>(S);

impl<S, B> Service<axum::http::Request<B>> for RecordRoute<S>
where
    S: Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> S::Future {
        let extensions = request.extensions();
        if let (Some(path), Some(notes)) = (
            extensions.get::<MatchedPath>(),
            extensions.get::<RequestNotes>(),
        ) {
            let _ = notes.0.route.set(path.clone());
        }
        self.0.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[tokio::test]
    async fn an_answer_over_its_time_is_a_408_in_the_error_shape() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(StatusCode::OK.into_response())
        };
        let late = within(Duration::from_millis(50), slow).await;
        assert_eq!(late.status(), StatusCode::REQUEST_TIMEOUT);
        let body = axum::body::to_bytes(late.into_body(), 1024).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["statusCode"], 408);
        assert_eq!(body["message"], "Request took too long");

        let fast = async { Ok(StatusCode::NO_CONTENT.into_response()) };
        let answered = within(Duration::from_millis(50), fast).await;
        assert_eq!(answered.status(), StatusCode::NO_CONTENT);
    }
}
