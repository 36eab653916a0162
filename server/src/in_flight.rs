//! The requests each user has under way in this process, capped: one account cannot hold the
//! database pool that everyone's requests share.
//!
//! A probe with one free account and 63 connections, each asking for a search of its own large
//! mailbox over and over, kept another user's one-page listing waiting 2.7–6.2 s for a
//! connection (the pool holds 20). Each authenticated request now takes one of its user's
//! places for as long as its handler runs (an event stream gives its place back once it has
//! started: streams have their own cap); with none left it is `429` with `Retry-After`. A
//! handler runs to its end even if its client hangs up (`startup::detached`), so a place is not
//! given back while the request's statement still holds a connection.

use convos_core::UserId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The places of every user with a request under way.
#[derive(Clone, Debug)]
pub struct InFlight {
    per_user: usize,
    open: Arc<Mutex<HashMap<UserId, usize>>>,
}

/// One request's place; dropping it (when the handler is done) frees it.
#[derive(Debug)]
pub struct Place {
    in_flight: InFlight,
    user: UserId,
}

impl InFlight {
    /// At most `per_user` requests a user at once (at least one).
    pub fn new(per_user: usize) -> Self {
        Self {
            per_user: per_user.max(1),
            open: Arc::default(),
        }
    }

    /// A place for one more request of `user`, if they have one left.
    pub fn enter(&self, user: UserId) -> Option<Place> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(user).or_default();
        if *count >= self.per_user {
            return None;
        }
        *count += 1;
        Some(Place {
            in_flight: self.clone(),
            user,
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self
            .in_flight
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_has_their_places_and_gets_them_back() {
        let in_flight = InFlight::new(2);
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let first = in_flight.enter(alice).unwrap();
        let second = in_flight.enter(alice).unwrap();
        assert!(in_flight.enter(alice).is_none(), "a third at once");
        assert!(in_flight.enter(bob).is_some(), "others are not affected");
        drop(first);
        let third = in_flight.enter(alice).expect("a place freed");
        drop((second, third));
        assert!(in_flight.open.lock().unwrap().is_empty(), "nothing kept");
    }
}
