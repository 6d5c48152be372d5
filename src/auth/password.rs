//! bcrypt hashing and verifying, off the async workers. bcrypt runs on tokio's
//! blocking pool behind a semaphore of one less than the cores, so a login storm queues
//! here instead of starving key- and token-authenticated requests; past a bounded
//! queue, callers get `Busy` (503 + `Retry-After`) rather than waiting forever.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::error::ApiError;

/// A password as typed, kept out of `Debug` output and logs.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(text: String) -> Self {
        Self(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

pub struct PasswordHasher {
    cost: u32,
    running: Semaphore,
    waiting: Arc<Semaphore>,
    dummy_hash: String,
}

/// How many password operations may wait for a core before new ones are refused.
const QUEUE_PER_CORE: usize = 32;

impl PasswordHasher {
    /// # Errors
    /// When bcrypt refuses `cost` (outside 4..=31).
    pub fn new(cost: u32) -> Result<Self, bcrypt::BcryptError> {
        // Made once at start-up, with the configured cost, so the unknown-email
        // path costs exactly one verify.
        let dummy_hash = bcrypt::hash("authgate-dummy-password", cost)?;
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        // One core is left to everything else: during a login storm, key- and
        // token-authenticated requests keep a core of their own.
        let hashing_slots = cores.saturating_sub(1).max(1);
        Ok(Self {
            cost,
            running: Semaphore::new(hashing_slots),
            waiting: Arc::new(Semaphore::new(cores * QUEUE_PER_CORE)),
            dummy_hash,
        })
    }

    /// # Errors
    /// `Busy` when the queue is full; `Internal` if bcrypt fails.
    pub async fn hash(&self, password: &Password) -> Result<String, ApiError> {
        let password = password.clone();
        let cost = self.cost;
        self.run(move || bcrypt::hash(password.expose(), cost))
            .await?
            .map_err(ApiError::internal)
    }

    /// True when `password` matches `hash`. A malformed stored hash counts as no match.
    ///
    /// # Errors
    /// `Busy` when the queue is full.
    pub async fn verify(&self, password: &Password, hash: &str) -> Result<bool, ApiError> {
        let password = password.clone();
        let hash = hash.to_string();
        self.run(move || bcrypt::verify(password.expose(), &hash).unwrap_or(false))
            .await
    }

    /// Spends the same work as [`Self::verify`] against a fixed hash, for logins of
    /// unknown emails: same time, same answer as a wrong password.
    ///
    /// # Errors
    /// `Busy` when the queue is full.
    pub async fn verify_dummy(&self, password: &Password) -> Result<(), ApiError> {
        self.verify(password, &self.dummy_hash).await.map(|_| ())
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _queued = self
            .waiting
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Busy {
                retry_after_secs: 1,
            })?;
        let _running = self.running.acquire().await.map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(ApiError::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(4).unwrap();
        let password = Password::new("correct horse".into());
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$2b$04$"));
        assert!(hasher.verify(&password, &hash).await.unwrap());
        let wrong = Password::new("wrong horse".into());
        assert!(!hasher.verify(&wrong, &hash).await.unwrap());
        assert!(!hasher.verify(&password, "not-a-hash").await.unwrap());
    }

    #[tokio::test]
    async fn dummy_hash_has_the_configured_cost() {
        let hasher = PasswordHasher::new(5).unwrap();
        assert!(hasher.dummy_hash.starts_with("$2b$05$"));
        hasher
            .verify_dummy(&Password::new("x".into()))
            .await
            .unwrap();
    }

    #[test]
    fn debug_hides_the_password() {
        assert_eq!(
            format!("{:?}", Password::new("hunter22".into())),
            "Password(***)"
        );
    }
}
