//! The verification cache: what a key hash or a session id resolved to, so that a
//! protected request costs a memory lookup, not a database round trip. Bounded in
//! entries; a TTL bounds staleness should an eviction ever be missed. Expiry is
//! never cached as a verdict: records carry `expires_at` and are checked against
//! the clock on every request.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use moka::sync::Cache;
use uuid::Uuid;

use sha2::{Digest, Sha256};

use super::{api_key::KeyHash, rate_limit::Limit, tokens::AccessClaims};

/// What a stored key resolves to. `usable` folds in revocation and the owner's state.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key_id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub usable: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's own limit, if it was created with one.
    pub rate_limit: Option<Limit>,
}

/// What a session id resolves to. `usable` folds in revocation and the user's state.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user_id: Uuid,
    pub email: String,
    pub usable: bool,
    pub expires_at: DateTime<Utc>,
}

impl KeyRecord {
    pub fn accepts_at(&self, now: DateTime<Utc>) -> bool {
        self.usable && self.expires_at.is_none_or(|expires_at| now < expires_at)
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

pub struct VerificationCache {
    /// Claims of access tokens already verified: a digest costs less than the
    /// signature check and JSON parsing, and the session is still checked.
    access_tokens: Cache<TokenDigest, Arc<AccessClaims>>,
    keys: Cache<KeyHash, Arc<KeyRecord>>,
    unknown_keys: Cache<KeyHash, ()>,
    sessions: Cache<Uuid, Arc<SessionRecord>>,
}

impl VerificationCache {
    pub fn new(max_entries: u64, ttl: Duration, negative_ttl: Duration) -> Self {
        Self {
            access_tokens: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build(),
            keys: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build(),
            unknown_keys: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(negative_ttl)
                .build(),
            sessions: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub fn key(&self, hash: &KeyHash) -> Lookup<Arc<KeyRecord>> {
        if let Some(record) = self.keys.get(hash) {
            Lookup::Known(record)
        } else if self.unknown_keys.contains_key(hash) {
            Lookup::Unknown
        } else {
            Lookup::Miss
        }
    }

    pub fn remember_key(&self, hash: KeyHash, record: Option<Arc<KeyRecord>>) {
        match record {
            Some(record) => self.keys.insert(hash, record),
            None => self.unknown_keys.insert(hash, ()),
        }
    }

    pub fn access_token(&self, digest: &TokenDigest) -> Option<Arc<AccessClaims>> {
        self.access_tokens.get(digest)
    }

    pub fn remember_access_token(&self, digest: TokenDigest, claims: Arc<AccessClaims>) {
        self.access_tokens.insert(digest, claims);
    }

    pub fn session(&self, id: Uuid) -> Option<Arc<SessionRecord>> {
        self.sessions.get(&id)
    }

    pub fn remember_session(&self, id: Uuid, record: Arc<SessionRecord>) {
        self.sessions.insert(id, record);
    }

    pub fn apply(&self, revocation: &Revocation) {
        match revocation {
            Revocation::Key(hash) => self.keys.invalidate(hash),
            Revocation::Session(id) => self.sessions.invalidate(id),
            // Rare (an admin action): dropping everything is simpler than an index
            // from user to entries, and the next requests refill what is still valid.
            Revocation::User(_) => self.clear(),
        }
    }

    pub fn clear(&self) {
        self.access_tokens.invalidate_all();
        self.keys.invalidate_all();
        self.unknown_keys.invalidate_all();
        self.sessions.invalidate_all();
    }
}

/// A cache answer: a record, a remembered "no such key", or nothing known.
pub enum Lookup<T> {
    Known(T),
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
            email: "a@b.io".into(),
            usable: true,
            expires_at,
            rate_limit: None,
        }
    }

    #[test]
    fn expiry_is_checked_against_the_clock() {
        let now = Utc::now();
        let record = record(Some(now + chrono::Duration::seconds(1)));
        assert!(record.accepts_at(now));
        assert!(!record.accepts_at(now + chrono::Duration::seconds(2)));
    }

    #[test]
    fn revoking_a_key_evicts_it() {
        let cache = VerificationCache::new(10, Duration::from_secs(60), Duration::from_secs(60));
        let hash = ApiKey::generate().unwrap().hash();
        cache.remember_key(hash, Some(Arc::new(record(None))));
        assert!(matches!(cache.key(&hash), Lookup::Known(_)));
        cache.apply(&Revocation::Key(hash));
        assert!(matches!(cache.key(&hash), Lookup::Miss));
    }

    #[test]
    fn unknown_keys_are_remembered() {
        let cache = VerificationCache::new(10, Duration::from_secs(60), Duration::from_secs(60));
        let hash = ApiKey::generate().unwrap().hash();
        cache.remember_key(hash, None);
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
