//! The delivery worker: a loop over claimed rows. Each round claims the
//! attempts that are due (`models::webhook_deliveries::claim_due`: a lease, so
//! two instances never make one attempt and a crashed instance's claims come
//! back), sends each endpoint's share in order, one endpoint's share per task,
//! and records every attempt's outcome with what follows it: the next attempt
//! after the retry schedule (with ±20 % jitter, or the receiver's
//! `Retry-After` on 429 and 503 when that is longer), or the endpoint disabled
//! (410 Gone, or failing for `WEBHOOK_DISABLE_AFTER`). It never runs on the
//! request path: requests only write rows.
//!
//! An attempt is bounded: 15 s in all, no redirects followed, at most 64 KiB of
//! the response read. A ticker of its own, started beside the loop, sweeps
//! for expired keys (`key.expired`).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{header, redirect, StatusCode};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{
    address::CheckedResolver,
    signing::{self, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER},
};
use crate::{
    models::{
        _entities::{events, webhook_endpoints},
        api_keys,
        webhook_deliveries::{self, AfterFailure, Attempted, Claim, Finished},
    },
    ops::metrics::DeliveryCounters,
    settings::Webhooks,
};

/// How long one attempt may take, connection and response included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of a response is read (and dropped past that).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of a failed response's body is kept as its error.
const MAX_ERROR_CHARS: usize = 300;
/// How long a claim holds: an attempt not finished by then is due again.
const LEASE: Duration = Duration::from_secs(60);
/// Attempts claimed per round.
const CLAIM_BATCH: u64 = 64;
/// Endpoints served at once.
const MAX_ENDPOINT_TASKS: usize = 64;
/// How often the worker looks for due attempts when it has nothing to do.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How often expired keys are looked for.
const EXPIRY_SWEEP_EVERY: Duration = Duration::from_secs(15);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Sends due deliveries.
pub struct Deliverer {
    db: DatabaseConnection,
    client: reqwest::Client,
    settings: Webhooks,
    counters: DeliveryCounters,
}

impl Deliverer {
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(db: &DatabaseConnection, settings: &Webhooks) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("authgate-webhooks/", env!("CARGO_PKG_VERSION")))
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(redirect::Policy::none())
            // A proxy would connect for us, past the address check.
            .no_proxy()
            .https_only(settings.addresses.https_only)
            .dns_resolver(Arc::new(CheckedResolver {
                policy: settings.addresses,
            }))
            .build()
            .map_err(|err| format!("webhook HTTP client: {err}"))?;
        Ok(Self {
            db: db.clone(),
            client,
            settings: settings.clone(),
            counters: DeliveryCounters::default(),
        })
    }

    /// Counts every attempt in `counters` (the metrics).
    #[must_use]
    pub fn counted_in(mut self, counters: DeliveryCounters) -> Self {
        self.counters = counters;
        self
    }

    /// Makes every attempt due at `now` (as if it were `now`), endpoints side
    /// by side, and waits for them. Returns how many were made.
    ///
    /// # Errors
    /// Database errors of the claim.
    pub async fn deliver_due(self: &Arc<Self>, now: DateTime<Utc>) -> Result<usize, DbErr> {
        let mut tasks = JoinSet::new();
        let mut attempts = 0;
        loop {
            let groups = self.claim(now, &[]).await?;
            if groups.is_empty() {
                break;
            }
            for (claim, deliveries) in groups {
                attempts += deliveries.len();
                let deliverer = self.clone();
                tasks.spawn(
                    async move { deliverer.deliver_in_order(&claim, deliveries, now).await },
                );
            }
            while tasks.join_next().await.is_some() {}
        }
        Ok(attempts)
    }

    /// Claims what is due at `now`, leaving out `busy` endpoints: one list
    /// per endpoint, in the order of their events.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        busy: &[Uuid],
    ) -> Result<Vec<(Arc<ClaimContext>, Vec<webhook_deliveries::Model>)>, DbErr> {
        let lease_until = now + TimeDelta::from_std(LEASE).unwrap_or(TimeDelta::MAX);
        let Claim {
            lease_until,
            deliveries,
        } = webhook_deliveries::claim_due(&self.db, now, lease_until, CLAIM_BATCH, busy).await?;
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let context = webhook_deliveries::context_of(&self.db, &deliveries).await?;
        let claim = Arc::new(ClaimContext {
            lease_until,
            claimed_at: Instant::now(),
            events: context.events,
            endpoints: context.endpoints,
        });
        let mut by_endpoint: BTreeMap<Uuid, Vec<_>> = BTreeMap::new();
        for delivery in deliveries {
            by_endpoint
                .entry(delivery.endpoint_id)
                .or_default()
                .push(delivery);
        }
        Ok(by_endpoint
            .into_values()
            .map(|group| (claim.clone(), group))
            .collect())
    }

    /// Sends one endpoint's claimed attempts one after the other. What the
    /// lease no longer covers goes back, due at once, for the next round.
    async fn deliver_in_order(
        &self,
        claim: &ClaimContext,
        deliveries: Vec<webhook_deliveries::Model>,
        now: DateTime<Utc>,
    ) {
        let latest_start = LEASE.saturating_sub(ATTEMPT_TIMEOUT + Duration::from_secs(5));
        for (index, delivery) in deliveries.iter().enumerate() {
            if claim.claimed_at.elapsed() > latest_start {
                let rest = &deliveries[index..];
                if let Err(err) =
                    webhook_deliveries::release(&self.db, rest, claim.lease_until, Utc::now()).await
                {
                    tracing::warn!(error = %err, "could not release claimed webhook deliveries; they are due when their lease ends");
                }
                return;
            }
            // In real time the attempt happens now; `deliver_due` may pretend
            // a later time, to make retries due.
            let at = now.max(Utc::now());
            match self.deliver(claim, delivery, at).await {
                // The rest of the share failed with the endpoint.
                Ok(Finished::EndpointDisabled) => return,
                Ok(Finished::Recorded) => {}
                Ok(Finished::ClaimLost) => {
                    tracing::warn!(delivery = %delivery.id, "a webhook attempt outlived its lease; another worker makes the next one");
                }
                Err(err) => {
                    tracing::warn!(error = %err, delivery = %delivery.id, "could not record a webhook delivery attempt; it is due again when its lease ends");
                }
            }
        }
    }

    /// Makes one attempt and records it.
    async fn deliver(
        &self,
        claim: &ClaimContext,
        delivery: &webhook_deliveries::Model,
        at: DateTime<Utc>,
    ) -> Result<Finished, DbErr> {
        let (Some(event), Some(endpoint)) = (
            claim.events.get(&delivery.event_id),
            claim.endpoints.get(&delivery.endpoint_id),
        ) else {
            // Deleted since the claim, its deliveries with it: nothing to record.
            return Ok(Finished::Recorded);
        };
        let response = self.send(endpoint, event, at).await;
        self.counters.attempted(response.succeeded());
        let attempted = Attempted {
            succeeded: response.succeeded(),
            response_status: response.status.map(|status| status.as_u16()),
            error: response.error.clone(),
            duration_ms: u64::try_from(response.duration.as_millis()).unwrap_or(u64::MAX),
            at,
        };
        let next = |failing_for: TimeDelta| {
            self.after_failure(delivery.attempt, &response, at, failing_for)
        };
        webhook_deliveries::finish(&self.db, delivery, claim.lease_until, &attempted, next).await
    }

    /// What follows failed attempt number `attempt`.
    fn after_failure(
        &self,
        attempt: i32,
        response: &Response,
        at: DateTime<Utc>,
        failing_for: TimeDelta,
    ) -> AfterFailure {
        if response.fatal {
            return AfterFailure::Disable(response.error.clone().unwrap_or_default());
        }
        if response.status == Some(StatusCode::GONE) {
            return AfterFailure::Disable("The endpoint answered 410 Gone".into());
        }
        let disable_after =
            TimeDelta::from_std(self.settings.disable_after).unwrap_or(TimeDelta::MAX);
        if failing_for >= disable_after {
            return AfterFailure::Disable(format!(
                "Every attempt failed for {}",
                humantime::format_duration(self.settings.disable_after)
            ));
        }
        let step = usize::try_from(attempt - 1).unwrap_or(usize::MAX);
        let Some(wait) = self.settings.retry_schedule.get(step) else {
            return AfterFailure::GiveUp;
        };
        let wait = with_jitter(*wait).max(response.retry_after.unwrap_or_default());
        AfterFailure::RetryAt(at + TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX))
    }

    /// POSTs `event` to `endpoint`, signed, at `at`.
    async fn send(
        &self,
        endpoint: &webhook_endpoints::Model,
        event: &events::Model,
        at: DateTime<Utc>,
    ) -> Response {
        let started = Instant::now();
        let url = match self.settings.addresses.check_url(&endpoint.url) {
            Ok(url) => url,
            Err(problem) => return Response::fatal(format!("URL refused: {problem}")),
        };
        let Some(key) = signing::decode_secret(&endpoint.secret) else {
            return Response::fatal("The endpoint's secret is unreadable".into());
        };
        let body = payload(event);
        let id = event.id.to_string();
        let timestamp = at.timestamp();
        let request = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(ID_HEADER, &id)
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signing::sign(&key, &id, timestamp, &body))
            .body(body);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(err) => return Response::failed(describe(&err), started.elapsed()),
        };
        let status = response.status();
        let retry_after = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
        .then(|| retry_after(response.headers(), Utc::now()))
        .flatten();
        let mut received = Vec::new();
        // Bounded by the attempt's timeout and by MAX_RESPONSE_BYTES; what is
        // past that is never read (the connection is dropped).
        while received.len() < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => received.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        let error = (!status.is_success()).then(|| {
            let text: String = String::from_utf8_lossy(&received)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(MAX_ERROR_CHARS)
                .collect();
            let text = text.trim();
            if text.is_empty() {
                format!("HTTP {}", status.as_u16())
            } else {
                format!("HTTP {}: {text}", status.as_u16())
            }
        });
        Response {
            status: Some(status),
            error,
            retry_after,
            fatal: false,
            duration: started.elapsed(),
        }
    }
}

/// One claim's lease and what its deliveries need.
struct ClaimContext {
    lease_until: DateTime<Utc>,
    claimed_at: Instant,
    events: HashMap<Uuid, events::Model>,
    endpoints: HashMap<Uuid, webhook_endpoints::Model>,
}

/// How an attempt went, as the worker sees it.
struct Response {
    status: Option<StatusCode>,
    error: Option<String>,
    retry_after: Option<Duration>,
    /// Never deliverable as it stands: the endpoint is disabled for `error`.
    fatal: bool,
    duration: Duration,
}

impl Response {
    fn succeeded(&self) -> bool {
        self.status.is_some_and(|status| status.is_success())
    }

    fn failed(error: String, duration: Duration) -> Self {
        Self {
            status: None,
            error: Some(error),
            retry_after: None,
            fatal: false,
            duration,
        }
    }

    fn fatal(reason: String) -> Self {
        Self {
            status: None,
            error: Some(reason),
            retry_after: None,
            fatal: true,
            duration: Duration::ZERO,
        }
    }
}

/// The body of a delivery: `{"type", "timestamp", "data"}` (Standard Webhooks).
pub fn payload(event: &events::Model) -> String {
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
    serde_json::json!({
        "type": event.r#type,
        "timestamp": event.created_at.with_timezone(&Utc),
        "data": data,
    })
    .to_string()
}

/// A transport error in a few words, with its cause (the address check's
/// refusal comes through as the resolver's error).
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return format!("Timed out after {} s", ATTEMPT_TIMEOUT.as_secs());
    }
    let mut text = if err.is_connect() {
        "Connection failed".to_string()
    } else {
        "Request failed".to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(MAX_ERROR_CHARS).collect()
}

/// `Retry-After` in seconds or as an HTTP date, at most a day.
fn retry_after(headers: &header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&Utc) - now).to_std().unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// `wait` ±20 %, so that endpoints failing together do not retry together.
fn with_jitter(wait: Duration) -> Duration {
    let mut bytes = [0u8; 4];
    let unit = match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    };
    wait.mul_f64(0.8 + 0.4 * unit)
}

/// Starts the worker: the delivery loop (counting its attempts in
/// `counters`) and the expired-key sweep.
pub fn spawn(db: &DatabaseConnection, settings: &Webhooks, counters: DeliveryCounters) {
    match Deliverer::new(db, settings) {
        Ok(deliverer) => {
            tokio::spawn(Arc::new(deliverer.counted_in(counters)).run());
        }
        Err(err) => tracing::error!(error = %err, "webhook deliveries cannot start"),
    }
    let db = db.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(EXPIRY_SWEEP_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(err) = sweep_expired_keys(&db, Utc::now()).await {
                tracing::warn!(error = %err, "could not record expired keys");
            }
        }
    });
}

/// Records `key.expired` for every key expired by `now` without one yet.
/// Returns how many.
///
/// # Errors
/// Database errors.
pub async fn sweep_expired_keys(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let mut recorded = 0;
    loop {
        let batch = api_keys::record_expiries(db, now).await?;
        recorded += batch;
        if batch == 0 {
            return Ok(recorded);
        }
    }
}

impl Deliverer {
    /// The loop: claim what is due (leaving out endpoints this instance is
    /// sending to, so each endpoint gets its events in order), hand each
    /// endpoint's share to a task, and look again when a share is done, when
    /// a full batch suggests more is due, or after [`POLL_EVERY`].
    async fn run(self: Arc<Self>) {
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut busy: HashMap<tokio::task::Id, Uuid> = HashMap::new();
        loop {
            let mut claimed = 0;
            if tasks.len() < MAX_ENDPOINT_TASKS {
                let busy_endpoints: Vec<Uuid> = busy.values().copied().collect();
                match self.claim(Utc::now(), &busy_endpoints).await {
                    Ok(groups) => {
                        for (claim, deliveries) in groups {
                            claimed += deliveries.len();
                            let endpoint = deliveries[0].endpoint_id;
                            let deliverer = self.clone();
                            let task = tasks.spawn(async move {
                                deliverer
                                    .deliver_in_order(&claim, deliveries, Utc::now())
                                    .await;
                            });
                            busy.insert(task.id(), endpoint);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "could not claim webhook deliveries");
                    }
                }
            }
            while let Some(done) = tasks.try_join_next_with_id() {
                forget(&mut busy, done);
            }
            if claimed as u64 == CLAIM_BATCH {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(POLL_EVERY) => {}
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    forget(&mut busy, done);
                }
            }
        }
    }
}

/// Frees the endpoint of a finished (or panicked) task.
fn forget(
    busy: &mut HashMap<tokio::task::Id, Uuid>,
    done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
) {
    let id = match done {
        Ok((id, ())) => id,
        Err(err) => {
            tracing::error!(error = %err, "a webhook delivery task failed");
            err.id()
        }
    };
    busy.remove(&id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..1000 {
            let wait = with_jitter(Duration::from_secs(100));
            assert!(wait >= Duration::from_secs(80) && wait <= Duration::from_secs(120));
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let mut headers = header::HeaderMap::new();
        headers.insert(header::RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        headers.insert(
            header::RETRY_AFTER,
            "Tue, 01 Dec 2026 10:05:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(300)));
        headers.insert(header::RETRY_AFTER, "9999999".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(MAX_RETRY_AFTER));
        headers.insert(header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn the_payload_is_type_timestamp_and_data() {
        let event = events::Model {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            r#type: "key.created".into(),
            data: r#"{"keyId":"k","name":"billing"}"#.into(),
            created_at: "2026-12-01T10:00:00.123456Z"
                .parse::<DateTime<Utc>>()
                .unwrap()
                .fixed_offset(),
        };
        let body: serde_json::Value = serde_json::from_str(&payload(&event)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "key.created",
                "timestamp": "2026-12-01T10:00:00.123456Z",
                "data": {"keyId": "k", "name": "billing"},
            })
        );
    }
}
