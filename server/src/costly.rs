//! Work whose cost grows with what users have stored, capped per process for all users
//! together, and each user to a share of it: however many accounts ask at once, such requests
//! hold only so many of the pooled connections, and no one account takes every place
//! (decisions 53 and 55).

use crate::error::ApiError;
use crate::in_flight::{self, InFlight};
use convos_core::UserId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Places for one kind of costly work.
#[derive(Clone, Debug)]
pub struct Budget {
    places: Arc<Semaphore>,
    /// Each user's share, counted as their requests under way are.
    shares: InFlight,
}

/// A place taken from a [`Budget`]; dropping it (when the work is done) frees it.
#[derive(Debug)]
pub struct Place {
    _permit: OwnedSemaphorePermit,
    _share: in_flight::Place,
}

impl Budget {
    /// `places` at once (at least one), a quarter of them (at least one) for any one user.
    pub fn new(places: usize) -> Self {
        let places = places.max(1);
        Self {
            places: Arc::new(Semaphore::new(places)),
            shares: InFlight::new((places / 4).max(1)),
        }
    }

    /// A place for `user`, or `429` with `Retry-After: 1` at once when they hold their share or
    /// every place is taken: like any limit, answered rather than queued, so waiting requests
    /// never pile up behind it. A refused user's share is given back at once.
    pub fn place(&self, user: UserId) -> Result<Place, ApiError> {
        let busy = || ApiError::RateLimited(Duration::from_secs(1));
        let share = self.shares.enter(user).ok_or_else(busy)?;
        let permit = self
            .places
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy())?;
        Ok(Place {
            _permit: permit,
            _share: share,
        })
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
        assert_eq!(budget.shares.users(), 1, "nothing kept of the refused");
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
