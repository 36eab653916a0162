//! Work whose cost grows with what users have stored, capped per process for all users
//! together: however many accounts ask at once, such requests hold only so many of the pooled
//! connections, and the rest of the API keeps the others (decisions 53 and 55).

use crate::error::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Places for one kind of costly work.
#[derive(Clone, Debug)]
pub struct Budget(Arc<Semaphore>);

/// A place taken from a [`Budget`]; dropping it (when the work is done) frees it.
pub type Place = OwnedSemaphorePermit;

impl Budget {
    /// `places` at once (at least one).
    pub fn new(places: usize) -> Self {
        Self(Arc::new(Semaphore::new(places.max(1))))
    }

    /// A place, or `429` with `Retry-After: 1` at once when every place is taken: like any
    /// limit, answered rather than queued, so waiting requests never pile up behind it.
    pub fn place(&self) -> Result<Place, ApiError> {
        self.0
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::RateLimited(Duration::from_secs(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_comes_back_when_its_work_is_done() {
        let budget = Budget::new(1);
        let held = budget.place().unwrap();

        assert!(matches!(budget.place(), Err(ApiError::RateLimited(_))));
        drop(held);
        assert!(budget.place().is_ok());
    }
}
