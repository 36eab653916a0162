//! Work whose cost grows with what users have stored, capped per process for all users
//! together, and each user to a share of it: however many accounts ask at once, such requests
//! hold only so many of the pooled connections, and no one account takes every place
//! (decisions 53 and 55).

use crate::error::ApiError;
use convos_core::UserId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Places for one kind of costly work.
#[derive(Clone, Debug)]
pub struct Budget {
    places: Arc<Semaphore>,
    per_user: usize,
    held: Arc<Mutex<HashMap<UserId, usize>>>,
}

/// A place taken from a [`Budget`]; dropping it (when the work is done) frees it.
#[derive(Debug)]
pub struct Place {
    _permit: OwnedSemaphorePermit,
    held: Arc<Mutex<HashMap<UserId, usize>>>,
    user: UserId,
}

impl Budget {
    /// `places` at once (at least one), a quarter of them (at least one) for any one user.
    pub fn new(places: usize) -> Self {
        let places = places.max(1);
        Self {
            places: Arc::new(Semaphore::new(places)),
            per_user: (places / 4).max(1),
            held: Arc::default(),
        }
    }

    /// A place for `user`, or `429` with `Retry-After: 1` at once when they hold their share or
    /// every place is taken: like any limit, answered rather than queued, so waiting requests
    /// never pile up behind it.
    pub fn place(&self, user: UserId) -> Result<Place, ApiError> {
        let busy = || ApiError::RateLimited(Duration::from_secs(1));
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.get(&user).is_some_and(|&mine| mine >= self.per_user) {
            return Err(busy());
        }
        let permit = self
            .places
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy())?;
        // Counted only once placed: a refused user leaves nothing behind.
        *held.entry(user).or_default() += 1;
        Ok(Place {
            _permit: permit,
            held: self.held.clone(),
            user,
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mine) = held.get_mut(&self.user) {
            *mine -= 1;
            if *mine == 0 {
                held.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_comes_back_when_its_work_is_done() {
        let budget = Budget::new(1);
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let held = budget.place(alice).unwrap();

        assert!(matches!(budget.place(bob), Err(ApiError::RateLimited(_))));
        assert_eq!(
            budget.held.lock().unwrap().len(),
            1,
            "nothing kept of the refused"
        );
        drop(held);
        assert!(budget.place(bob).is_ok());
    }

    #[test]
    fn one_user_holds_at_most_a_quarter_of_the_places() {
        let budget = Budget::new(8);
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let hers = [budget.place(alice).unwrap(), budget.place(alice).unwrap()];

        assert!(matches!(budget.place(alice), Err(ApiError::RateLimited(_))));
        assert!(budget.place(bob).is_ok(), "the others' places are theirs");
        drop(hers);
        assert!(budget.place(alice).is_ok());
    }
}
