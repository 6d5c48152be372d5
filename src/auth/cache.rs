//! The verification cache: what a key hash or a session id resolved to, so that a
//! protected request costs a memory lookup, not a database round trip. Bounded in
//! entries; a TTL bounds staleness should an eviction ever be missed. Expiry is
//! never cached as a verdict: records carry `expires_at` and are checked against
//! the clock on every request.
//!
//! An entry is fresh for `ttl`, then stale for `stale_if_error` more: a stale
//! entry is reloaded, and served only when the reload cannot reach the database.
//! A generation counter, bumped by every eviction, keeps a load that started
//! before an eviction from putting its (revoked) record back afterwards.

use std::{
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use moka::sync::Cache;
use uuid::Uuid;

use sha2::{Digest, Sha256};

use super::{api_key::KeyHash, outcome::Outcome, rate_limit::Limit, tokens::AccessClaims};
use crate::models::{api_keys::KeyRow, sessions::SessionRow};

/// What a stored key resolves to, revoked or not: a key that stopped working is
/// still recognised, so that its uses are counted against it.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// Shared with the principals made from it: no copy per request.
    pub email: Arc<str>,
    pub revoked: bool,
    pub owner_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's own limit, if it was created with one.
    pub rate_limit: Option<Limit>,
}

/// What a session id resolves to. `usable` folds in revocation and the user's state.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user_id: Uuid,
    pub email: Arc<str>,
    pub usable: bool,
    pub expires_at: DateTime<Utc>,
}

impl From<KeyRow> for KeyRecord {
    fn from(row: KeyRow) -> Self {
        Self {
            key_id: row.id,
            user_id: row.user_id,
            name: row.name,
            email: row.email.into(),
            revoked: !row.key_active,
            owner_active: row.user_active,
            expires_at: row.expires_at,
            rate_limit: row.rate_limit.map(Limit::from),
        }
    }
}

impl From<SessionRow> for SessionRecord {
    fn from(row: SessionRow) -> Self {
        Self {
            user_id: row.user_id,
            email: row.email.into(),
            usable: !row.revoked && row.user_active,
            expires_at: row.expires_at,
        }
    }
}

impl KeyRecord {
    /// The key's standing at `now`, before its rate limit: revoked, disabled
    /// (owner inactive), expired (past `expires_at`, the end of a rotation's
    /// grace included), or valid.
    pub fn standing_at(&self, now: DateTime<Utc>) -> Outcome {
        if self.revoked {
            Outcome::Revoked
        } else if !self.owner_active {
            Outcome::Disabled
        } else if self.expires_at.is_some_and(|expires_at| now >= expires_at) {
            Outcome::Expired
        } else {
            Outcome::Valid
        }
    }
}

impl SessionRecord {
    pub fn accepts_at(&self, now: DateTime<Utc>) -> bool {
        self.usable && now < self.expires_at
    }
}

/// A change that makes cached verdicts wrong. Applied locally in the request that
/// caused it and, on PostgreSQL, broadcast to every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    Key(KeyHash),
    Session(Uuid),
    /// A user was deactivated or reactivated: every entry may mention them.
    User(Uuid),
}

impl Revocation {
    /// The `NOTIFY` payload: `key:<hash>`, `session:<id>` or `user:<id>`.
    pub fn to_payload(&self) -> String {
        match self {
            Self::Key(hash) => format!("key:{}", hash.to_hex()),
            Self::Session(id) => format!("session:{id}"),
            Self::User(id) => format!("user:{id}"),
        }
    }

    pub fn from_payload(payload: &str) -> Option<Self> {
        let (kind, value) = payload.split_once(':')?;
        match kind {
            "key" => KeyHash::from_hex(value).map(Self::Key),
            "session" => value.parse().ok().map(Self::Session),
            "user" => value.parse().ok().map(Self::User),
            _ => None,
        }
    }
}

/// The SHA-256 of an access token that passed verification once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

/// A record and when it was read from the database.
#[derive(Clone)]
struct Entry<T> {
    record: Arc<T>,
    loaded: Instant,
}

/// Taken (shared) by a load between reading the generation and inserting, and
/// (exclusive) by an eviction: so no insert can slip in after an eviction that
/// it predates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation(u64);

pub struct VerificationCache {
    /// Claims of access tokens already verified: a digest costs less than the
    /// signature check and JSON parsing, and the session is still checked.
    access_tokens: Cache<TokenDigest, Arc<AccessClaims>>,
    keys: Cache<KeyHash, Entry<KeyRecord>>,
    unknown_keys: Cache<KeyHash, ()>,
    sessions: Cache<Uuid, Entry<SessionRecord>>,
    fresh_for: Duration,
    generation: RwLock<u64>,
}

impl VerificationCache {
    pub fn new(
        max_entries: u64,
        ttl: Duration,
        negative_ttl: Duration,
        stale_if_error: Duration,
    ) -> Self {
        let kept_for = ttl.saturating_add(stale_if_error);
        Self {
            access_tokens: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build(),
            keys: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(kept_for)
                .build(),
            unknown_keys: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(negative_ttl)
                .build(),
            sessions: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(kept_for)
                .build(),
            fresh_for: ttl,
            generation: RwLock::new(0),
        }
    }

    fn lookup<T>(&self, entry: Option<Entry<T>>) -> Option<Lookup<Arc<T>>> {
        entry.map(|entry| {
            if entry.loaded.elapsed() < self.fresh_for {
                Lookup::Known(entry.record)
            } else {
                Lookup::Stale(entry.record)
            }
        })
    }

    pub fn key(&self, hash: &KeyHash) -> Lookup<Arc<KeyRecord>> {
        if let Some(lookup) = self.lookup(self.keys.get(hash)) {
            lookup
        } else if self.unknown_keys.contains_key(hash) {
            Lookup::Unknown
        } else {
            Lookup::Miss
        }
    }

    /// Read before a load from the database; hand it back to `remember_*`.
    pub fn generation(&self) -> Generation {
        Generation(
            *self
                .generation
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Runs `insert` unless an eviction happened since `loaded_at` was read.
    fn insert_if_current(&self, loaded_at: Generation, insert: impl FnOnce()) {
        let current = self
            .generation
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if *current == loaded_at.0 {
            insert();
        }
    }

    pub fn remember_key(
        &self,
        loaded_at: Generation,
        hash: KeyHash,
        record: Option<Arc<KeyRecord>>,
    ) {
        self.insert_if_current(loaded_at, || match record {
            Some(record) => self.keys.insert(
                hash,
                Entry {
                    record,
                    loaded: Instant::now(),
                },
            ),
            None => self.unknown_keys.insert(hash, ()),
        });
    }

    pub fn access_token(&self, digest: &TokenDigest) -> Option<Arc<AccessClaims>> {
        self.access_tokens.get(digest)
    }

    pub fn remember_access_token(&self, digest: TokenDigest, claims: Arc<AccessClaims>) {
        self.access_tokens.insert(digest, claims);
    }

    pub fn session(&self, id: Uuid) -> Lookup<Arc<SessionRecord>> {
        self.lookup(self.sessions.get(&id)).unwrap_or(Lookup::Miss)
    }

    pub fn remember_session(&self, loaded_at: Generation, id: Uuid, record: Arc<SessionRecord>) {
        self.insert_if_current(loaded_at, || {
            self.sessions.insert(
                id,
                Entry {
                    record,
                    loaded: Instant::now(),
                },
            );
        });
    }

    pub fn apply(&self, revocation: &Revocation) {
        let mut generation = self
            .generation
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *generation += 1;
        match revocation {
            Revocation::Key(hash) => self.keys.invalidate(hash),
            Revocation::Session(id) => self.sessions.invalidate(id),
            // Rare (an admin action): dropping everything is simpler than an index
            // from user to entries, and the next requests refill what is still valid.
            Revocation::User(_) => self.invalidate_all(),
        }
    }

    /// Forgets everything (the revocation listener reconnected: it may have
    /// missed some).
    pub fn clear(&self) {
        let mut generation = self
            .generation
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *generation += 1;
        self.invalidate_all();
    }

    /// Entries in the key (known and unknown), session and access-token
    /// caches; approximate, as moka counts them.
    pub fn entry_counts(&self) -> [u64; 3] {
        [
            self.keys.entry_count() + self.unknown_keys.entry_count(),
            self.sessions.entry_count(),
            self.access_tokens.entry_count(),
        ]
    }

    fn invalidate_all(&self) {
        self.access_tokens.invalidate_all();
        self.keys.invalidate_all();
        self.unknown_keys.invalidate_all();
        self.sessions.invalidate_all();
    }
}

/// A cache answer: a record (fresh, or past its TTL and to be reloaded), a
/// remembered "no such key", or nothing known.
pub enum Lookup<T> {
    Known(T),
    Stale(T),
    Unknown,
    Miss,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::api_key::ApiKey;

    fn record(expires_at: Option<DateTime<Utc>>) -> KeyRecord {
        KeyRecord {
            key_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            name: "svc".into(),
            email: "a@b.io".into(),
            revoked: false,
            owner_active: true,
            expires_at,
            rate_limit: None,
        }
    }

    #[test]
    fn expiry_is_checked_against_the_clock() {
        let now = Utc::now();
        let record = record(Some(now + chrono::Duration::seconds(1)));
        assert_eq!(record.standing_at(now), Outcome::Valid);
        assert_eq!(
            record.standing_at(now + chrono::Duration::seconds(2)),
            Outcome::Expired
        );
    }

    #[test]
    fn revocation_outranks_the_owner_and_the_owner_outranks_expiry() {
        let past = Utc::now() - chrono::Duration::seconds(1);
        let mut key = record(Some(past));
        assert_eq!(key.standing_at(Utc::now()), Outcome::Expired);
        key.owner_active = false;
        assert_eq!(key.standing_at(Utc::now()), Outcome::Disabled);
        key.revoked = true;
        assert_eq!(key.standing_at(Utc::now()), Outcome::Revoked);
    }

    fn cache(ttl: Duration, stale_if_error: Duration) -> VerificationCache {
        VerificationCache::new(10, ttl, Duration::from_secs(60), stale_if_error)
    }

    #[test]
    fn revoking_a_key_evicts_it() {
        let cache = cache(Duration::from_secs(60), Duration::ZERO);
        let hash = ApiKey::generate().unwrap().hash();
        cache.remember_key(cache.generation(), hash, Some(Arc::new(record(None))));
        assert!(matches!(cache.key(&hash), Lookup::Known(_)));
        cache.apply(&Revocation::Key(hash));
        assert!(matches!(cache.key(&hash), Lookup::Miss));
    }

    #[test]
    fn a_load_that_predates_an_eviction_is_not_remembered() {
        let cache = cache(Duration::from_secs(60), Duration::ZERO);
        let hash = ApiKey::generate().unwrap().hash();
        let session = Uuid::new_v4();
        // A request reads the generation, then loads the (still valid) record...
        let loaded_at = cache.generation();
        // ...while another request revokes the key and the session...
        cache.apply(&Revocation::Key(hash));
        cache.apply(&Revocation::Session(session));
        // ...and only then does the first one try to remember what it loaded.
        cache.remember_key(loaded_at, hash, Some(Arc::new(record(None))));
        let record = SessionRecord {
            user_id: Uuid::new_v4(),
            email: "a@b.io".into(),
            usable: true,
            expires_at: Utc::now() + chrono::Duration::hours(1),
        };
        cache.remember_session(loaded_at, session, Arc::new(record));
        assert!(matches!(cache.key(&hash), Lookup::Miss));
        assert!(matches!(cache.session(session), Lookup::Miss));
    }

    #[test]
    fn entries_past_their_ttl_are_stale_until_stale_if_error_ends() {
        let cache = cache(Duration::from_millis(30), Duration::from_millis(200));
        let hash = ApiKey::generate().unwrap().hash();
        cache.remember_key(cache.generation(), hash, Some(Arc::new(record(None))));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(cache.key(&hash), Lookup::Stale(_)));
        std::thread::sleep(Duration::from_millis(250));
        assert!(matches!(cache.key(&hash), Lookup::Miss));
    }

    #[test]
    fn unknown_keys_are_remembered() {
        let cache = cache(Duration::from_secs(60), Duration::ZERO);
        let hash = ApiKey::generate().unwrap().hash();
        cache.remember_key(cache.generation(), hash, None);
        assert!(matches!(cache.key(&hash), Lookup::Unknown));
    }

    #[test]
    fn payloads_round_trip() {
        let id = Uuid::new_v4();
        for revocation in [
            Revocation::Key(ApiKey::generate().unwrap().hash()),
            Revocation::Session(id),
            Revocation::User(id),
        ] {
            assert_eq!(
                Revocation::from_payload(&revocation.to_payload()),
                Some(revocation)
            );
        }
        assert_eq!(Revocation::from_payload("junk"), None);
    }
}
