//! Counting attempts in fixed windows: in Redis when `REDIS_URL` is set, so that
//! every instance shares one count, else in memory. If Redis goes away the
//! service keeps limiting from memory, says so once in the log, and returns to
//! Redis when it answers again.
//!
//! Why counters rather than `governor`'s GCRA: login throttling counts failures
//! only and forgets them on success, which needs a per-key reset; and the same
//! counter must live in Redis (`INCR` + `PEXPIRE NX`, the standard pattern).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use moka::sync::Cache;
use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, AsyncCommands};
use tokio::sync::OnceCell;

const REDIS_PREFIX: &str = "authgate:rl:";
/// A Redis that does not answer this fast counts as down for this request.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
const MEMORY_ENTRIES: u64 = 200_000;
/// Memory entries idle this long are dropped: longer than any configured window.
const MEMORY_IDLE: Duration = Duration::from_secs(24 * 3600);
/// After a failure, Redis is left alone this long, so an outage costs requests
/// no time: they count in memory until the next probe.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(5);

/// At most `max` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl From<crate::models::api_keys::KeyRateLimit> for Limit {
    fn from(limit: crate::models::api_keys::KeyRateLimit) -> Self {
        Self {
            max: limit.requests,
            window: Duration::from_secs(u64::from(limit.per_seconds)),
        }
    }
}

/// How much of a limit's current window is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub limit: Limit,
    pub used: u32,
    pub resets_in: Duration,
}

impl Usage {
    pub fn exceeded(&self) -> bool {
        self.used > self.limit.max
    }

    /// For a check made before the event: true when one more would exceed.
    pub fn exhausted(&self) -> bool {
        self.used >= self.limit.max
    }

    pub fn remaining(&self) -> u32 {
        self.limit.max.saturating_sub(self.used)
    }

    /// Whole seconds until the window resets, at least 1 (for `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        let seconds = self.resets_in.as_secs() + u64::from(self.resets_in.subsec_nanos() > 0);
        seconds.max(1)
    }

    /// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds):
    /// on every response to a rate-limited key, 429s included.
    pub fn insert_headers(&self, headers: &mut axum::http::HeaderMap) {
        headers.insert("ratelimit-limit", self.limit.max.into());
        headers.insert("ratelimit-remaining", self.remaining().into());
        headers.insert("ratelimit-reset", self.retry_after_secs().into());
    }
}

struct Window {
    used: u32,
    started: Instant,
}

pub struct RateLimiter {
    memory: Cache<String, Arc<Mutex<Window>>>,
    redis: Option<SharedCounters>,
}

struct SharedCounters {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    healthy: AtomicBool,
    down_until: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// # Errors
    /// When `redis_url` is not a Redis URL.
    pub fn new(redis_url: Option<&str>) -> Result<Self, String> {
        let redis = redis_url
            .map(|url| {
                redis::Client::open(url)
                    .map(|client| SharedCounters {
                        client,
                        connection: OnceCell::new(),
                        healthy: AtomicBool::new(true),
                        down_until: Mutex::new(None),
                    })
                    .map_err(|err| format!("REDIS_URL: {err}"))
            })
            .transpose()?;
        Ok(Self {
            memory: Cache::builder()
                .max_capacity(MEMORY_ENTRIES)
                .time_to_idle(MEMORY_IDLE)
                .build(),
            redis,
        })
    }

    /// Counts one event under `key` and returns the usage including it.
    pub async fn hit(&self, key: &str, limit: Limit) -> Usage {
        if let Some(redis) = &self.redis {
            if let Some(usage) = redis.run(|conn| hit_redis(conn, key, limit)).await {
                return usage;
            }
        }
        self.window_in_memory(key, limit, 1)
    }

    /// The usage under `key`, without counting anything.
    pub async fn peek(&self, key: &str, limit: Limit) -> Usage {
        if let Some(redis) = &self.redis {
            if let Some(usage) = redis.run(|conn| peek_redis(conn, key, limit)).await {
                return usage;
            }
        }
        self.window_in_memory(key, limit, 0)
    }

    /// `None` without `REDIS_URL`; else whether Redis answered last time.
    pub fn redis_healthy(&self) -> Option<bool> {
        self.redis
            .as_ref()
            .map(|redis| redis.healthy.load(Ordering::Relaxed) && !redis.resting())
    }

    /// Forgets everything counted under `key`.
    pub async fn reset(&self, key: &str) {
        if let Some(redis) = &self.redis {
            let redis_key = redis_key(key);
            redis
                .run(|mut conn| async move { conn.del::<_, ()>(redis_key).await })
                .await;
        }
        self.memory.invalidate(key);
    }

    fn window_in_memory(&self, key: &str, limit: Limit, add: u32) -> Usage {
        let entry = self.memory.get_with_by_ref(key, || {
            Arc::new(Mutex::new(Window {
                used: 0,
                started: Instant::now(),
            }))
        });
        let mut window = entry.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = window.started.elapsed();
        if elapsed >= limit.window {
            *window = Window {
                used: 0,
                started: Instant::now(),
            };
        }
        window.used = window.used.saturating_add(add);
        Usage {
            limit,
            used: window.used,
            resets_in: limit.window.saturating_sub(window.started.elapsed()),
        }
    }
}

impl SharedCounters {
    /// Runs `command` on Redis; `None` (and a log line on the first failure of an
    /// outage) when Redis cannot be reached in time.
    async fn run<T, F, Fut>(&self, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.resting() {
            return None;
        }
        let result = match self.connection().await {
            Ok(conn) => tokio::time::timeout(REDIS_TIMEOUT, command(conn))
                .await
                .map_err(|_| "timed out".to_string())
                .and_then(|result| result.map_err(|err| err.to_string())),
            Err(err) => Err(err),
        };
        match result {
            Ok(value) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("Redis is back; rate limits are shared again");
                }
                Some(value)
            }
            Err(err) => {
                *self
                    .down_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some(Instant::now() + REDIS_RETRY_AFTER);
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %err, "Redis unavailable; rate limits fall back to this instance's memory");
                }
                None
            }
        }
    }

    fn resting(&self) -> bool {
        let down_until = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        down_until.is_some_and(|until| Instant::now() < until)
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        self.connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
                    .await
                    .map_err(|err| err.to_string())
            })
            .await
            .cloned()
    }
}

async fn hit_redis(
    mut conn: ConnectionManager,
    key: &str,
    limit: Limit,
) -> redis::RedisResult<Usage> {
    let key = redis_key(key);
    let window_ms = u64::try_from(limit.window.as_millis()).unwrap_or(u64::MAX);
    let (used, _, ttl_ms): (u32, i64, i64) = redis::pipe()
        .atomic()
        .incr(&key, 1)
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(window_ms)
        .arg("NX")
        .pttl(&key)
        .query_async(&mut conn)
        .await?;
    Ok(redis_usage(limit, used, ttl_ms))
}

async fn peek_redis(
    mut conn: ConnectionManager,
    key: &str,
    limit: Limit,
) -> redis::RedisResult<Usage> {
    let key = redis_key(key);
    let (used, ttl_ms): (Option<u32>, i64) = redis::pipe()
        .get(&key)
        .pttl(&key)
        .query_async(&mut conn)
        .await?;
    Ok(redis_usage(limit, used.unwrap_or(0), ttl_ms))
}

fn redis_key(key: &str) -> String {
    format!("{REDIS_PREFIX}{key}")
}

fn redis_usage(limit: Limit, used: u32, ttl_ms: i64) -> Usage {
    let resets_in = u64::try_from(ttl_ms).map_or(limit.window, Duration::from_millis);
    Usage {
        limit,
        used,
        resets_in,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_PER_MINUTE: Limit = Limit {
        max: 3,
        window: Duration::from_secs(60),
    };

    #[tokio::test]
    async fn counts_until_the_limit_then_exceeds() {
        let limiter = RateLimiter::new(None).unwrap();
        for expected in 1..=3 {
            let usage = limiter.hit("k", THREE_PER_MINUTE).await;
            assert_eq!(usage.used, expected);
            assert!(!usage.exceeded());
        }
        let over = limiter.hit("k", THREE_PER_MINUTE).await;
        assert!(over.exceeded());
        assert_eq!(over.remaining(), 0);
        assert!((1..=60).contains(&over.retry_after_secs()));
        assert!(!limiter.hit("other", THREE_PER_MINUTE).await.exceeded());
    }

    #[tokio::test]
    async fn peek_does_not_count_and_reset_forgets() {
        let limiter = RateLimiter::new(None).unwrap();
        limiter.hit("k", THREE_PER_MINUTE).await;
        assert_eq!(limiter.peek("k", THREE_PER_MINUTE).await.used, 1);
        assert_eq!(limiter.peek("k", THREE_PER_MINUTE).await.used, 1);
        limiter.reset("k").await;
        assert_eq!(limiter.peek("k", THREE_PER_MINUTE).await.used, 0);
    }

    #[tokio::test]
    async fn a_window_ends() {
        let limiter = RateLimiter::new(None).unwrap();
        let short = Limit {
            max: 1,
            window: Duration::from_millis(50),
        };
        limiter.hit("k", short).await;
        assert!(limiter.hit("k", short).await.exceeded());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!limiter.hit("k", short).await.exceeded());
    }

    #[tokio::test]
    async fn an_unreachable_redis_falls_back_to_memory() {
        // Nothing listens on port 1: every Redis call fails fast.
        let limiter = RateLimiter::new(Some("redis://127.0.0.1:1")).unwrap();
        for _ in 0..3 {
            limiter.hit("k", THREE_PER_MINUTE).await;
        }
        assert!(limiter.hit("k", THREE_PER_MINUTE).await.exceeded());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let usage = |resets_in| Usage {
            limit: THREE_PER_MINUTE,
            used: 4,
            resets_in,
        };
        assert_eq!(usage(Duration::from_millis(1)).retry_after_secs(), 1);
        assert_eq!(usage(Duration::from_millis(1500)).retry_after_secs(), 2);
        assert_eq!(usage(Duration::from_secs(2)).retry_after_secs(), 2);
        assert_eq!(usage(Duration::ZERO).retry_after_secs(), 1);
    }
}
