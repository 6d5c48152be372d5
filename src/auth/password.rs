//! bcrypt hashing and verifying, off the async workers. bcrypt runs on threads of
//! its own, one less than the cores, at a lower CPU priority than the request
//! workers: a login storm queues here instead of starving key- and token-authenticated
//! requests. Past a bounded queue, callers get `Busy` (503 + `Retry-After`) rather
//! than waiting forever.

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

type Job = Box<dyn FnOnce() + Send>;

pub struct PasswordHasher {
    cost: u32,
    jobs: crossbeam_channel::Sender<Job>,
    dummy_hash: String,
}

/// How many password operations may wait for a core before new ones are refused.
const QUEUE_PER_CORE: usize = 32;

/// How far below the service's own priority the bcrypt threads run, in nice steps.
/// At 10 the scheduler gives a request worker about nine times the CPU share of a
/// bcrypt thread when both want a core, yet logins still progress when requests
/// keep the cores busy.
const NICE_STEP: i32 = 10;

impl PasswordHasher {
    /// # Errors
    /// When bcrypt refuses `cost` (outside 4..=31) or a thread cannot be started.
    pub fn new(cost: u32) -> Result<Self, String> {
        // Made once at start-up, with the configured cost, so the unknown-email
        // path costs exactly one verify.
        let dummy_hash = bcrypt::hash("authgate-dummy-password", cost)
            .map_err(|err| format!("settings.bcrypt_cost: {err}"))?;
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(cores * QUEUE_PER_CORE);
        // One core is left to everything else: during a login storm, key- and
        // token-authenticated requests keep a core of their own.
        for index in 0..cores.saturating_sub(1).max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("bcrypt-{index}"))
                .spawn(move || {
                    lower_priority();
                    // Ends when the hasher, the only sender, is dropped. A job that
                    // panics fails its own request (its answer is dropped), not the thread.
                    for job in queue {
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .map_err(|err| format!("starting the bcrypt threads: {err}"))?;
        }
        Ok(Self {
            cost,
            jobs,
            dummy_hash,
        })
    }

    /// Password operations waiting for a bcrypt thread.
    pub fn queue_depth(&self) -> usize {
        self.jobs.len()
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
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A request that went away while queued costs no bcrypt work.
            if !done.is_closed() {
                let _ = done.send(work());
            }
        });
        self.jobs.try_send(job).map_err(|err| match err {
            crossbeam_channel::TrySendError::Full(_) => ApiError::Busy {
                retry_after_secs: 1,
            },
            crossbeam_channel::TrySendError::Disconnected(_) => {
                ApiError::internal("the bcrypt threads have stopped")
            }
        })?;
        result.await.map_err(ApiError::internal)
    }
}

/// Lowers the calling thread's CPU priority by [`NICE_STEP`], up to the lowest (19).
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: both take plain integers and touch no memory of ours; `who = 0` with
    // PRIO_PROCESS is the calling thread, as Linux keeps a nice value per thread.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, (nice + NICE_STEP).min(19)) } != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "could not lower the priority of a bcrypt thread"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

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

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn bcrypt_runs_below_the_request_workers_priority() {
        let hasher = PasswordHasher::new(4).unwrap();
        // SAFETY: getpriority takes plain integers; `who = 0` is the calling thread.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        // The threads start from the nice value of the thread that made the hasher.
        let expected = (nice() + NICE_STEP).min(19);
        assert_eq!(hasher.run(nice).await.unwrap(), expected);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy() {
        let hasher = PasswordHasher::new(4).unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let blocked = std::sync::Arc::new(std::sync::Mutex::new(blocked));
        // Every thread busy and the queue full: each job waits for a release. The
        // threads take one job each and block, so the queue fills.
        let mut pending = Vec::new();
        loop {
            let blocked = blocked.clone();
            let (done, result) = tokio::sync::oneshot::channel();
            let job: Job = Box::new(move || {
                let _ = blocked.lock().unwrap().recv();
                let _ = done.send(());
            });
            if hasher.jobs.try_send(job).is_err() {
                break;
            }
            pending.push(result);
        }
        let err = hasher.verify_dummy(&Password::new("x".into())).await;
        assert!(matches!(err, Err(ApiError::Busy { .. })), "{err:?}");
        drop(release);
        for result in pending {
            result.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let hasher = PasswordHasher::new(4).unwrap();
        // More panics than threads: without recovery, no thread would be left.
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        for _ in 0..=cores {
            let err = hasher.run(|| panic!("bcrypt blew up")).await;
            assert!(matches!(err, Err(ApiError::Internal(_))), "{err:?}");
        }
        let password = Password::new("still hashing".into());
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hasher.verify(&password, &hash).await.unwrap());
    }

    #[test]
    fn debug_hides_the_password() {
        assert_eq!(
            format!("{:?}", Password::new("hunter22".into())),
            "Password(***)"
        );
    }
}
