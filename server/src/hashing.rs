//! Password hashing on a small dedicated pool: a fixed set of threads, each reusing one argon2
//! memory buffer, fed by bounded queues that refuse work at once when they are full.
//!
//! Each argon2id hash needs 19 MiB of working memory. Allocated per hash on tokio's blocking
//! threads (which come and go), glibc kept those buffers in ever more arenas: a spray of 40
//! parallel logins took the process from 14 MB to over 700 MB, and kept it. Here the memory is
//! allocated once per pool thread and reused, so it is bounded by `threads × 19 MiB` whatever
//! the load, and a full queue answers "busy" instead of letting waiters pile up. Logins from an
//! address the user logged in from before wait in a lane of their own that is served first.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use convos_core::Password;
use rand::RngCore;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use tokio::sync::oneshot;

/// The most working memory one verification may use (256 MiB): a stored hash asking for more
/// is refused rather than allowed to grow a pool thread's buffer without bound.
const MAX_BLOCKS: usize = 256 * 1024;

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every thread is busy and the queue is full: try again shortly.
    #[error("the password hasher is busy")]
    Busy,
    /// The pool stopped (a hashing thread panicked, or shutdown).
    #[error("the password hasher stopped")]
    Stopped,
    /// argon2 refused its inputs.
    #[error("could not hash the password: {0}")]
    Failed(String),
}

impl From<HashError> for crate::error::ApiError {
    fn from(err: HashError) -> Self {
        match err {
            // Answered at once, like any limit: the client retries in a second.
            HashError::Busy => {
                tracing::warn!("password hashing queue full; refusing");
                Self::RateLimited(std::time::Duration::from_secs(1))
            }
            other => Self::Internal(other.into()),
        }
    }
}

enum Job {
    Verify {
        password: String,
        phc: Arc<str>,
        reply: oneshot::Sender<bool>,
    },
    Hash {
        password: Password,
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// Which queue a job waits in. Workers always take a [`Lane::Known`] job first, so the owner of
/// an account logging in from where they did before is not stuck behind a spray of guesses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// A password check for a user from one of their known addresses (an address they logged
    /// in from or used a session from lately; see [`crate::login_limits`]). Successful checks
    /// are limited per user and per address, so one account cannot keep this lane full.
    Known,
    /// Everything else: sign-ups, first logins from an address, and guesses.
    Other,
}

/// The waiting jobs of both lanes, each bounded to `capacity`.
struct Queue {
    lanes: Mutex<Lanes>,
    ready: Condvar,
    capacity: usize,
}

struct Lanes {
    known: VecDeque<Job>,
    other: VecDeque<Job>,
    closed: bool,
}

/// Closes the queue when the last [`Hasher`] is dropped, which stops the threads.
struct Handle(Arc<Queue>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.0.ready.notify_all();
    }
}

/// A handle to the hashing pool; cheap to clone. The threads stop when the last handle is
/// dropped.
#[derive(Clone)]
pub struct Hasher {
    handle: Arc<Handle>,
}

impl Hasher {
    /// Starts `threads` hashing threads behind two lanes of at most `queue` waiting jobs each.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<Self> {
        let queue = Arc::new(Queue {
            lanes: Mutex::new(Lanes {
                known: VecDeque::new(),
                other: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: queue,
        });
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("convos-hash-{i}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Self {
            handle: Arc::new(Handle(queue)),
        })
    }

    /// A pool sized for this machine: one thread per core (at most 8, so at most 152 MiB of
    /// buffers), and up to four waiting jobs per thread in each lane.
    pub fn for_this_machine() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
        Self::start(threads, threads * 4)
    }

    /// Whether `password` matches the PHC string `phc`. A malformed `phc` does not match.
    pub async fn verify(
        &self,
        lane: Lane,
        password: String,
        phc: Arc<str>,
    ) -> Result<bool, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(
            lane,
            Job::Verify {
                password,
                phc,
                reply,
            },
        )?;
        answer.await.map_err(|_| HashError::Stopped)
    }

    /// Hashes a new password to an argon2id PHC string with the default parameters.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Lane::Other, Job::Hash { password, reply })?;
        answer
            .await
            .map_err(|_| HashError::Stopped)?
            .map_err(HashError::Failed)
    }

    fn submit(&self, lane: Lane, job: Job) -> Result<(), HashError> {
        let queue = &self.handle.0;
        let mut lanes = queue.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting = match lane {
            Lane::Known => &mut lanes.known,
            Lane::Other => &mut lanes.other,
        };
        if waiting.len() >= queue.capacity {
            return Err(HashError::Busy);
        }
        waiting.push_back(job);
        drop(lanes);
        queue.ready.notify_one();
        Ok(())
    }
}

/// One pool thread: takes jobs, known lane first, until the queue closes, reusing one working
/// buffer.
fn work(queue: &Queue) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = {
            let mut lanes = queue.lanes.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(job) = lanes.known.pop_front().or_else(|| lanes.other.pop_front()) {
                    break job;
                }
                if lanes.closed {
                    return;
                }
                lanes = queue
                    .ready
                    .wait(lanes)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        // A panic drops the job's reply (its request fails) but keeps the thread serving.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| match job {
            Job::Verify {
                password,
                phc,
                reply,
            } => {
                let _ = reply.send(verify(&mut memory, password.as_bytes(), &phc));
            }
            Job::Hash { password, reply } => {
                let _ = reply.send(hash(&mut memory, &password));
            }
        }));
    }
}

/// The first `blocks` blocks of `memory`, grown (once) if it is smaller.
fn blocks(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    &mut memory[..blocks]
}

fn verify(memory: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    let Ok(stored) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let algorithm = Algorithm::try_from(stored.algorithm.as_str());
    let version = Version::try_from(stored.version.unwrap_or(Version::default().into()));
    let params = Params::try_from(&stored);
    let (Ok(algorithm), Ok(version), Ok(params)) = (algorithm, version, params) else {
        return false;
    };
    if params.block_count() > MAX_BLOCKS {
        tracing::warn!(
            blocks = params.block_count(),
            "stored password hash asks for too much memory"
        );
        return false;
    }
    let count = params.block_count();
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt.as_ref(),
        &mut out,
        blocks(memory, count),
    );
    // `Output`'s equality is constant-time.
    computed.is_ok() && Output::new(&out).is_ok_and(|out| out == *expected)
}

fn hash(memory: &mut Vec<Block>, password: &Password) -> Result<String, String> {
    let params = Params::default();
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let count = params.block_count();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon
        .hash_password_into_with_memory(
            password.expose().as_bytes(),
            &salt,
            &mut out,
            blocks(memory, count),
        )
        .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth;

    fn password(s: &str) -> Password {
        Password::parse(s).unwrap()
    }

    #[tokio::test]
    async fn the_pool_agrees_with_the_reference_implementation() {
        let pool = Hasher::start(1, 4).unwrap();
        let ours = pool.hash(password("correct horse")).await.unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        assert!(auth::verify_password("correct horse", &ours));
        assert!(!auth::verify_password("wrong horse", &ours));

        let theirs: Arc<str> = auth::hash_password(&password("battery staple"))
            .unwrap()
            .into();
        assert!(
            pool.verify(Lane::Other, "battery staple".into(), theirs.clone())
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify(Lane::Known, "battery stapler".into(), theirs)
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify(Lane::Other, "anything".into(), "not a hash".into())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_known_lane_is_served_first() {
        let pool = Hasher::start(1, 8).unwrap();
        let phc: Arc<str> = auth::hash_password(&password("long enough"))
            .unwrap()
            .into();
        let done = std::sync::Mutex::new(Vec::new());
        let check = |lane: Lane, label: &'static str| {
            let (pool, phc, done) = (&pool, phc.clone(), &done);
            async move {
                assert!(pool.verify(lane, "long enough".into(), phc).await.unwrap());
                done.lock().unwrap().push(label);
            }
        };
        // Four guesses queue up before the owner's login arrives.
        futures::join!(
            check(Lane::Other, "guess"),
            check(Lane::Other, "guess"),
            check(Lane::Other, "guess"),
            check(Lane::Other, "guess"),
            check(Lane::Known, "owner"),
        );
        let order = done.into_inner().unwrap();
        let owner = order.iter().position(|l| *l == "owner").unwrap();
        assert!(
            owner <= 1,
            "the owner waited only for the check running: {order:?}"
        );
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let pool = Hasher::start(1, 1).unwrap();
        let phc: Arc<str> = auth::hash_password(&password("long enough"))
            .unwrap()
            .into();
        let jobs: Vec<_> = (0..6)
            .map(|_| pool.verify(Lane::Other, "long enough".into(), phc.clone()))
            .collect();
        let results = futures::future::join_all(jobs).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(HashError::Busy)))
            .count();
        let checked = results.iter().filter(|r| matches!(r, Ok(true))).count();
        assert!(busy >= 1, "some were refused: {results:?}");
        assert_eq!(busy + checked, 6, "the rest were checked: {results:?}");
    }
}
