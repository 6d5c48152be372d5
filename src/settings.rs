//! authgate's own settings: the `settings:` block of `config/{env}.yaml`, where the
//! old service's environment variables land. Parsed and checked once, at start-up.

use std::time::Duration;

use ipnet::IpNet;
use loco_rs::environment::Environment;
use serde::Deserialize;

use crate::{auth::rate_limit::Limit, events::address::AddressPolicy};

/// The secret development and test run with when none is given. Production refuses it.
pub const DEVELOPMENT_SECRET: &str = "authgate-development-secret-do-not-use-in-production";
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub jwt: JwtSettings,
    #[serde(default = "default_bcrypt_cost")]
    pub bcrypt_cost: u32,
    #[serde(default)]
    pub keys: KeySettings,
    #[serde(default)]
    pub cache: CacheSettings,
    #[serde(default)]
    pub last_used: LastUsedSettings,
    #[serde(default)]
    pub rate_limits: RateLimitSettings,
    /// Redis for rate-limit counters shared by all instances; empty: in memory.
    #[serde(default)]
    pub redis_url: String,
    /// Comma-separated peer IPs or CIDR ranges whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: String,
    #[serde(default)]
    pub http: HttpSettings,
    /// Comma-separated origins allowed by CORS; empty: no CORS headers at all.
    #[serde(default)]
    pub cors_origins: String,
    /// The Bearer token `GET /metrics` asks for; empty: none (then production
    /// hides the route and development and test leave it open).
    #[serde(default)]
    pub metrics_token: String,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default)]
    pub webhooks: WebhookSettings,
}

/// Webhook delivery (`WEBHOOK_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// The waits before each retry, comma-separated; empty: no retries.
    pub retry_schedule: String,
    /// An endpoint whose every attempt has failed for this long is disabled.
    pub disable_after: String,
    /// Production only: allow endpoints on loopback, private and link-local
    /// addresses (development and test always do).
    pub allow_private: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            retry_schedule: "5s,5m,30m,2h,5h,10h,10h".into(),
            disable_after: "5d".into(),
            allow_private: false,
        }
    }
}

/// Webhook delivery, parsed.
#[derive(Debug, Clone)]
pub struct Webhooks {
    /// The wait before retry n (after attempt n failed); past its end, no retry.
    pub retry_schedule: Vec<Duration>,
    pub disable_after: Duration,
    /// What endpoint URLs and the addresses they resolve to may be.
    pub addresses: AddressPolicy,
}

/// PEM files for HTTPS on `PORT`; both empty: plain HTTP.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    pub cert_file: String,
    pub key_file: String,
}

/// `max` events `per` duration (`45s`, `15m`, `1h`, `7d`, or seconds).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSetting {
    pub max: u32,
    pub per: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Failed logins for one account from one IP.
    pub login_failures_per_account_ip: LimitSetting,
    /// Failed logins for one account from anywhere: looser, so that one attacker
    /// cannot lock the account out for everyone.
    pub login_failures_per_account: LimitSetting,
    /// Login attempts from one IP, whatever the account.
    pub login_per_ip: LimitSetting,
    pub signup_per_ip: LimitSetting,
    pub refresh_per_ip: LimitSetting,
    /// Unknown (well-formed, not stored) keys one client may present; past it,
    /// 429 before any lookup.
    pub unknown_keys_per_ip: LimitSetting,
    /// Requests per API key for keys created without a `rateLimit`; none: unlimited.
    pub default_key: Option<LimitSetting>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        let limit = |max, per: &str| LimitSetting {
            max,
            per: per.into(),
        };
        Self {
            login_failures_per_account_ip: limit(5, "15m"),
            login_failures_per_account: limit(50, "15m"),
            login_per_ip: limit(60, "1m"),
            signup_per_ip: limit(10, "1h"),
            refresh_per_ip: limit(120, "1m"),
            unknown_keys_per_ip: limit(60, "1m"),
            default_key: None,
        }
    }
}

/// The limits the app enforces, parsed.
#[derive(Debug, Clone)]
pub struct Limits {
    pub login_failures_per_account_ip: Limit,
    pub login_failures_per_account: Limit,
    pub login_per_ip: Limit,
    pub signup_per_ip: Limit,
    pub refresh_per_ip: Limit,
    pub unknown_keys_per_ip: Limit,
    pub default_key: Option<Limit>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    pub secret: String,
    pub expires_in: String,
    pub refresh_secret: String,
    pub refresh_expires_in: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    /// Active (not revoked) keys one user may hold.
    pub max_active_per_user: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Entries in each of the key and session caches.
    pub max_entries: u64,
    /// How long a verified credential is trusted without a database read.
    pub ttl: String,
    /// How long an unknown key is remembered as unknown.
    pub negative_ttl: String,
    /// How long past `ttl` a verified credential is still served while the
    /// database fails (and only then).
    pub stale_if_error: String,
}

/// Bounds on what one connection can hold on to (slow or hostile clients).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// A request's headers must arrive within this; also how long an idle
    /// keep-alive connection waits for its next request.
    pub header_timeout: String,
    /// A request must be answered within this (408 after).
    pub request_timeout: String,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// After SIGTERM, in-flight requests get this long before the connections are dropped.
    pub shutdown_timeout: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_timeout: "10s".into(),
            request_timeout: "30s".into(),
            max_connections: 4096,
            shutdown_timeout: "10s".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LastUsedSettings {
    /// How often recorded key uses are written to the database.
    pub flush_interval: String,
}

const fn default_bcrypt_cost() -> u32 {
    bcrypt::DEFAULT_COST
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            max_active_per_user: 100,
        }
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            ttl: "30s".into(),
            negative_ttl: "5s".into(),
            stale_if_error: "5m".into(),
        }
    }
}

impl Default for LastUsedSettings {
    fn default() -> Self {
        Self {
            flush_interval: "5s".into(),
        }
    }
}

/// Parses the old service's durations: `45s`, `15m`, `1h`, `7d`, or a number of seconds.
///
/// # Errors
/// When the text is neither a number nor a duration with a unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).map_err(|err| format!("`{text}` is not a duration: {err}"))
}

/// The HTTP server's bounds, parsed.
#[derive(Debug, Clone)]
pub struct Http {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

/// Who may read `GET /metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Development and test without a token.
    Open,
    /// Only a request with `Authorization: Bearer <token>`.
    Token(String),
    /// Production without a token: the route answers 404.
    Hidden,
}

/// Where HTTPS's certificate chain and private key are (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: String,
    pub key_file: String,
}

/// Settings with durations parsed and secrets checked: what the app runs on.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub access_secret: String,
    pub access_ttl: Duration,
    pub refresh_secret: String,
    pub refresh_ttl: Duration,
    pub bcrypt_cost: u32,
    pub max_active_keys: u64,
    pub cache_max_entries: u64,
    pub cache_ttl: Duration,
    pub cache_negative_ttl: Duration,
    pub cache_stale_if_error: Duration,
    pub last_used_flush_interval: Duration,
    pub limits: Limits,
    pub redis_url: Option<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub http: Http,
    pub cors_origins: Vec<String>,
    pub metrics: MetricsAccess,
    /// `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    pub webhooks: Webhooks,
}

impl Settings {
    /// Reads the `settings:` block of the loaded config.
    ///
    /// # Errors
    /// When the block is missing or malformed.
    pub fn from_config(value: Option<&serde_json::Value>) -> Result<Self, String> {
        let value = value.ok_or("config has no `settings:` block")?;
        serde_json::from_value(value.clone()).map_err(|err| format!("config `settings:`: {err}"))
    }

    /// Parses durations and, in any environment but development and test (so
    /// staging too), refuses missing, default or short secrets.
    ///
    /// # Errors
    /// A message naming the offending environment variable.
    pub fn resolve(self, environment: &Environment) -> Result<Resolved, String> {
        let production = !matches!(environment, Environment::Development | Environment::Test);
        check_secret("JWT_SECRET", &self.jwt.secret, production)?;
        check_secret("JWT_REFRESH_SECRET", &self.jwt.refresh_secret, production)?;
        if self.jwt.secret == self.jwt.refresh_secret && production {
            return Err("JWT_SECRET and JWT_REFRESH_SECRET must differ".into());
        }
        let duration =
            |name: &str, text: &str| parse_duration(text).map_err(|err| format!("{name}: {err}"));
        let limit = |name: &str, setting: &LimitSetting| {
            Ok::<_, String>(Limit {
                max: setting.max,
                window: duration(&format!("settings.rate_limits.{name}.per"), &setting.per)?,
            })
        };
        let rate = &self.rate_limits;
        let limits = Limits {
            login_failures_per_account_ip: limit(
                "login_failures_per_account_ip",
                &rate.login_failures_per_account_ip,
            )?,
            login_failures_per_account: limit(
                "login_failures_per_account",
                &rate.login_failures_per_account,
            )?,
            login_per_ip: limit("login_per_ip", &rate.login_per_ip)?,
            signup_per_ip: limit("signup_per_ip", &rate.signup_per_ip)?,
            refresh_per_ip: limit("refresh_per_ip", &rate.refresh_per_ip)?,
            unknown_keys_per_ip: limit("unknown_keys_per_ip", &rate.unknown_keys_per_ip)?,
            default_key: rate
                .default_key
                .as_ref()
                .map(|setting| limit("default_key", setting))
                .transpose()?,
        };
        let trusted_proxies = comma_separated(&self.trusted_proxies)
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("TRUSTED_PROXIES: `{item}` is not an IP address or CIDR range")
                    })
            })
            .collect::<Result<_, _>>()?;
        let http = Http {
            header_timeout: duration("HEADER_TIMEOUT", &self.http.header_timeout)?,
            request_timeout: duration("REQUEST_TIMEOUT", &self.http.request_timeout)?,
            max_connections: self.http.max_connections.max(1),
            shutdown_timeout: duration("SHUTDOWN_TIMEOUT", &self.http.shutdown_timeout)?,
        };
        let metrics = match self.metrics_token.trim() {
            "" if production => MetricsAccess::Hidden,
            "" => MetricsAccess::Open,
            token => MetricsAccess::Token(token.to_string()),
        };
        let tls = match (self.tls.cert_file.trim(), self.tls.key_file.trim()) {
            ("", "") => None,
            ("", _) => return Err("TLS_KEY_FILE is set but TLS_CERT_FILE is not".into()),
            (_, "") => return Err("TLS_CERT_FILE is set but TLS_KEY_FILE is not".into()),
            (cert_file, key_file) => Some(TlsFiles {
                cert_file: cert_file.to_string(),
                key_file: key_file.to_string(),
            }),
        };
        let webhooks = Webhooks {
            retry_schedule: comma_separated(&self.webhooks.retry_schedule)
                .map(|step| duration("WEBHOOK_RETRY_SCHEDULE", step))
                .collect::<Result<_, _>>()?,
            disable_after: duration("WEBHOOK_DISABLE_AFTER", &self.webhooks.disable_after)?,
            addresses: AddressPolicy {
                https_only: production,
                allow_private: !production || self.webhooks.allow_private,
            },
        };
        Ok(Resolved {
            webhooks,
            limits,
            metrics,
            tls,
            redis_url: Some(self.redis_url.trim().to_string()).filter(|url| !url.is_empty()),
            trusted_proxies,
            http,
            cors_origins: comma_separated(&self.cors_origins)
                .map(str::to_string)
                .collect(),
            access_ttl: duration("JWT_EXPIRES_IN", &self.jwt.expires_in)?,
            refresh_ttl: duration("JWT_REFRESH_EXPIRES_IN", &self.jwt.refresh_expires_in)?,
            access_secret: self.jwt.secret,
            refresh_secret: self.jwt.refresh_secret,
            bcrypt_cost: self.bcrypt_cost,
            max_active_keys: self.keys.max_active_per_user,
            cache_max_entries: self.cache.max_entries,
            cache_ttl: duration("settings.cache.ttl", &self.cache.ttl)?,
            cache_negative_ttl: duration("settings.cache.negative_ttl", &self.cache.negative_ttl)?,
            cache_stale_if_error: duration("AUTH_STALE_IF_ERROR", &self.cache.stale_if_error)?,
            last_used_flush_interval: duration(
                "settings.last_used.flush_interval",
                &self.last_used.flush_interval,
            )?,
        })
    }
}

fn comma_separated(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn check_secret(variable: &str, secret: &str, production: bool) -> Result<(), String> {
    let problem = if secret.is_empty() {
        Some("is not set")
    } else if secret.contains(DEVELOPMENT_SECRET) {
        Some("is the development default")
    } else if secret.len() < MIN_SECRET_BYTES {
        Some("is shorter than 32 bytes")
    } else {
        None
    };
    match problem {
        Some(problem) if production => Err(format!("{variable} {problem}; refusing to start")),
        Some(problem) => {
            tracing::warn!("{variable} {problem}; fine for development, refused in production");
            Ok(())
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secret: &str, refresh_secret: &str) -> Settings {
        Settings {
            jwt: JwtSettings {
                secret: secret.into(),
                expires_in: "1h".into(),
                refresh_secret: refresh_secret.into(),
                refresh_expires_in: "7d".into(),
            },
            bcrypt_cost: 4,
            keys: KeySettings::default(),
            cache: CacheSettings::default(),
            last_used: LastUsedSettings::default(),
            rate_limits: RateLimitSettings::default(),
            redis_url: String::new(),
            trusted_proxies: "10.0.0.1, ::1, 192.168.0.0/16".into(),
            http: HttpSettings::default(),
            cors_origins: String::new(),
            metrics_token: String::new(),
            tls: TlsSettings::default(),
            webhooks: WebhookSettings::default(),
        }
    }

    #[test]
    fn lists_and_limits_parse() {
        let resolved = settings("a", "b").resolve(&Environment::Test).unwrap();
        assert_eq!(resolved.trusted_proxies.len(), 3);
        assert!(resolved.trusted_proxies[2]
            .contains(&"192.168.7.9".parse::<std::net::IpAddr>().unwrap()));
        assert_eq!(resolved.http.header_timeout, Duration::from_secs(10));
        assert_eq!(resolved.limits.unknown_keys_per_ip.max, 60);
        assert_eq!(resolved.limits.login_failures_per_account_ip.max, 5);
        assert_eq!(
            resolved.limits.login_failures_per_account_ip.window,
            Duration::from_secs(900)
        );
        assert!(resolved.limits.default_key.is_none());
        assert!(resolved.redis_url.is_none());
        let mut bad = settings("a", "b");
        bad.trusted_proxies = "proxy.local".into();
        assert!(bad
            .resolve(&Environment::Test)
            .unwrap_err()
            .contains("TRUSTED_PROXIES"));
    }

    #[test]
    fn durations_of_the_old_service_parse() {
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn production_refuses_missing_default_and_short_secrets() {
        let long = "x".repeat(40);
        let other = "y".repeat(40);
        let cases = [
            ("", other.as_str(), "JWT_SECRET is not set"),
            (
                DEVELOPMENT_SECRET,
                other.as_str(),
                "JWT_SECRET is the development default",
            ),
            (
                "short",
                other.as_str(),
                "JWT_SECRET is shorter than 32 bytes",
            ),
            (long.as_str(), "", "JWT_REFRESH_SECRET is not set"),
        ];
        for (secret, refresh, expected) in cases {
            let err = settings(secret, refresh)
                .resolve(&Environment::Production)
                .unwrap_err();
            assert!(err.starts_with(expected), "{err}");
        }
        assert!(settings(&long, &other)
            .resolve(&Environment::Production)
            .is_ok());
    }

    #[test]
    fn staging_gets_the_production_secret_checks() {
        let staging = Environment::Any("staging".into());
        let err = settings(DEVELOPMENT_SECRET, "y".repeat(40).as_str())
            .resolve(&staging)
            .unwrap_err();
        assert!(
            err.starts_with("JWT_SECRET is the development default"),
            "{err}"
        );
    }

    #[test]
    fn metrics_are_hidden_in_production_without_a_token_and_open_in_development() {
        let long = "x".repeat(40);
        let other = "y".repeat(40);
        let production = settings(&long, &other)
            .resolve(&Environment::Production)
            .unwrap();
        assert_eq!(production.metrics, MetricsAccess::Hidden);
        let development = settings("a", "b")
            .resolve(&Environment::Development)
            .unwrap();
        assert_eq!(development.metrics, MetricsAccess::Open);
        let mut with_token = settings(&long, &other);
        with_token.metrics_token = " scrape-me ".into();
        assert_eq!(
            with_token
                .resolve(&Environment::Production)
                .unwrap()
                .metrics,
            MetricsAccess::Token("scrape-me".into())
        );
    }

    #[test]
    fn tls_needs_both_files() {
        let mut half = settings("a", "b");
        half.tls.cert_file = "cert.pem".into();
        let err = half.resolve(&Environment::Test).unwrap_err();
        assert!(err.contains("TLS_KEY_FILE"), "{err}");
        assert!(settings("a", "b")
            .resolve(&Environment::Test)
            .unwrap()
            .tls
            .is_none());
    }

    #[test]
    fn webhooks_are_https_to_public_addresses_in_production_only() {
        let long = "x".repeat(40);
        let other = "y".repeat(40);
        let production = settings(&long, &other)
            .resolve(&Environment::Production)
            .unwrap()
            .webhooks;
        assert_eq!(production.retry_schedule.len(), 7);
        assert_eq!(production.retry_schedule[1], Duration::from_secs(300));
        assert_eq!(production.disable_after, Duration::from_secs(5 * 86_400));
        assert!(production.addresses.https_only && !production.addresses.allow_private);
        let test = settings("a", "b")
            .resolve(&Environment::Test)
            .unwrap()
            .webhooks;
        assert!(!test.addresses.https_only && test.addresses.allow_private);
        let mut custom = settings(&long, &other);
        custom.webhooks.retry_schedule = "1s, 2s,4s".into();
        custom.webhooks.allow_private = true;
        let custom = custom.resolve(&Environment::Production).unwrap().webhooks;
        assert_eq!(
            custom.retry_schedule,
            [1, 2, 4].map(Duration::from_secs).to_vec()
        );
        assert!(custom.addresses.https_only && custom.addresses.allow_private);
        let mut bad = settings("a", "b");
        bad.webhooks.retry_schedule = "1s,soon".into();
        let err = bad.resolve(&Environment::Test).unwrap_err();
        assert!(err.starts_with("WEBHOOK_RETRY_SCHEDULE"), "{err}");
    }

    #[test]
    fn development_accepts_the_default_secret() {
        let resolved = settings(DEVELOPMENT_SECRET, DEVELOPMENT_SECRET)
            .resolve(&Environment::Development)
            .unwrap();
        assert_eq!(resolved.access_ttl, Duration::from_secs(3600));
    }
}
