//! Work whose cost grows with what users have stored, capped per process for all users
//! together, each user to a share of it, and handed out fairly: however many accounts ask at
//! once, such requests hold only so many of the pooled connections, no one account takes every
//! place, and accounts that loop such requests cannot keep out one that asks now and then
//! (decisions 53, 55 and 79).
//!
//! When every place is taken a request waits, for a short while, in a queue that serves first
//! the user holding the fewest places, then the one served longest ago, then the first to come.
//! A request still waiting at the end of that while, or finding the queue full, is `429`.

use crate::error::ApiError;
use convos_core::UserId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a user's last service is remembered for the queue's order, at least: a user not
/// served for longer ranks as one never served.
const REMEMBERED: Duration = Duration::from_secs(60);

/// Users whose last service is remembered before the old ones are forgotten.
const REMEMBERED_USERS: usize = 1_024;

/// Places for one kind of costly work.
#[derive(Clone, Debug)]
pub struct Budget {
    inner: Arc<Mutex<Queue>>,
    /// How long a request may wait for a place.
    wait: Duration,
}

/// A place taken from a [`Budget`]; dropping it (when the work is done) frees it, or hands it
/// to the first waiting request.
#[derive(Debug)]
pub struct Place {
    budget: Budget,
    user: UserId,
}

#[derive(Debug)]
struct Queue {
    /// Places nobody holds. Only ever above zero while nobody waits.
    free: usize,
    /// A quarter of the places (at least one): what one user may hold and wait for at once.
    share: usize,
    /// At most this many requests wait at once.
    max_waiting: usize,
    /// Each user's places held (`.0`) and requests waiting (`.1`); users with neither absent.
    users: HashMap<UserId, (usize, usize)>,
    /// When each recently served user was last given a place.
    served: HashMap<UserId, Instant>,
    waiting: Vec<Waiter>,
    /// Numbers the waiters in order of arrival.
    arrivals: u64,
}

#[derive(Debug)]
struct Waiter {
    user: UserId,
    arrival: u64,
    /// Told when the waiter has been given a place.
    given: oneshot::Sender<()>,
}

impl Budget {
    /// `places` at once (at least one), a quarter of them (at least one) for any one user; a
    /// request may wait `wait` for a place, behind at most four times as many requests as there
    /// are places.
    pub fn new(places: usize, wait: Duration) -> Self {
        let places = places.max(1);
        Self {
            inner: Arc::new(Mutex::new(Queue {
                free: places,
                share: (places / 4).max(1),
                max_waiting: places * 4,
                users: HashMap::new(),
                served: HashMap::new(),
                waiting: Vec::new(),
                arrivals: 0,
            })),
            wait,
        }
    }

    /// A place for `user`: at once if one is free and nobody waits, else when the queue gives
    /// one within the budget's wait. `429` with `Retry-After: 1` at once when the user already
    /// holds or waits for their share or the queue is full, and when the wait runs out.
    pub async fn place(&self, user: UserId) -> Result<Place, ApiError> {
        let busy = || ApiError::RateLimited(Duration::from_secs(1));
        let (arrival, given) = {
            let mut queue = self.lock();
            let (held, waiting) = queue.users.get(&user).copied().unwrap_or_default();
            if held + waiting >= queue.share {
                return Err(busy());
            }
            if queue.free > 0 {
                queue.free -= 1;
                queue.give(user);
                return Ok(self.held_by(user));
            }
            if queue.waiting.len() >= queue.max_waiting {
                return Err(busy());
            }
            let (tell, given) = oneshot::channel();
            queue.arrivals += 1;
            let arrival = queue.arrivals;
            queue.waiting.push(Waiter {
                user,
                arrival,
                given: tell,
            });
            queue.users.entry(user).or_default().1 += 1;
            (arrival, given)
        };
        // Whatever ends the wait (a place, the deadline, the request dropped), the ticket
        // settles it under the lock: a place given as the wait ran out is handed on, not lost.
        let ticket = Ticket {
            budget: self,
            user,
            arrival,
        };
        match tokio::time::timeout(self.wait, given).await {
            Ok(Ok(())) => {
                std::mem::forget(ticket);
                Ok(self.held_by(user))
            }
            _ => {
                drop(ticket);
                Err(busy())
            }
        }
    }

    fn held_by(&self, user: UserId) -> Place {
        Place {
            budget: self.clone(),
            user,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Queue {
    /// Counts a place as `user`'s, served now.
    fn give(&mut self, user: UserId) {
        self.users.entry(user).or_default().0 += 1;
        let now = Instant::now();
        if self.served.len() >= REMEMBERED_USERS {
            self.served
                .retain(|_, at| now.duration_since(*at) < REMEMBERED);
            // More users served within the minute than remembered: all rank as never served
            // (the queue is then first come) rather than pruning on every place given.
            if self.served.len() >= REMEMBERED_USERS / 2 {
                self.served.clear();
            }
        }
        self.served.insert(user, now);
    }

    /// Takes a place from `user` and hands it to the first in the queue's order, or frees it.
    fn give_back(&mut self, user: UserId) {
        self.forget(user, |(held, _)| held);
        // The first: fewest places held, then served longest ago (or never), then first come.
        let first = self
            .waiting
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| {
                let held = self.users.get(&w.user).map_or(0, |(held, _)| *held);
                // Served more than `REMEMBERED` ago ranks as never served.
                let served = self
                    .served
                    .get(&w.user)
                    .copied()
                    .filter(|at| at.elapsed() < REMEMBERED);
                (held, served, w.arrival)
            })
            .map(|(i, _)| i);
        match first {
            Some(i) => {
                let waiter = self.waiting.swap_remove(i);
                self.forget(waiter.user, |(_, waiting)| waiting);
                self.give(waiter.user);
                // Its request gone, the ticket it dropped has already settled; if it is going
                // now, its ticket finds the place given and hands it on.
                let _ = waiter.given.send(());
            }
            None => self.free += 1,
        }
    }

    /// Takes one from the count `which` picks of `user`'s, forgetting users with none left.
    fn forget(&mut self, user: UserId, which: impl Fn(&mut (usize, usize)) -> &mut usize) {
        if let Some(counts) = self.users.get_mut(&user) {
            let count = which(counts);
            *count = count.saturating_sub(1);
            if *counts == (0, 0) {
                self.users.remove(&user);
            }
        }
    }
}

/// A request's place in the queue, settled when its wait ends without a place taken up.
struct Ticket<'a> {
    budget: &'a Budget,
    user: UserId,
    arrival: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut queue = self.budget.lock();
        match queue.waiting.iter().position(|w| w.arrival == self.arrival) {
            Some(i) => {
                queue.waiting.swap_remove(i);
                queue.forget(self.user, |(_, waiting)| waiting);
            }
            // Given a place just as the wait ended: hand it on.
            None => queue.give_back(self.user),
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.budget.lock().give_back(self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn refused(result: Result<Place, ApiError>) -> bool {
        matches!(result, Err(ApiError::RateLimited(_)))
    }

    /// Starts `user`'s request for a place in the background, and lets it reach the queue.
    async fn waiting(budget: &Budget, user: UserId) -> tokio::task::JoinHandle<Place> {
        let asking = budget.clone();
        let request = tokio::spawn(async move { asking.place(user).await.unwrap() });
        while budget.lock().users.get(&user).is_none_or(|c| c.1 == 0) {
            tokio::task::yield_now().await;
        }
        request
    }

    #[tokio::test]
    async fn a_place_comes_back_when_its_work_is_done() {
        let budget = Budget::new(1, Duration::from_millis(20));
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let held = budget.place(alice).await.unwrap();

        assert!(refused(budget.place(bob).await), "no place within the wait");
        assert!(
            !budget.lock().users.contains_key(&bob),
            "nothing kept of the refused"
        );
        drop(held);
        let bobs = budget.place(bob).await.unwrap();
        assert_eq!((bobs.user, budget.lock().free), (bob, 0));
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_next_place_freed() {
        let budget = Budget::new(1, WAIT);
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let held = budget.place(alice).await.unwrap();
        let bobs = waiting(&budget, bob).await;

        drop(held);
        let place = bobs.await.unwrap();
        assert_eq!(place.user, bob);
        assert_eq!(budget.lock().free, 0, "the place went to Bob, not back");
    }

    #[tokio::test]
    async fn one_user_holds_and_waits_for_at_most_a_quarter_of_the_places() {
        let budget = Budget::new(8, WAIT);
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let hers = [
            budget.place(alice).await.unwrap(),
            budget.place(alice).await.unwrap(),
        ];

        assert!(
            refused(budget.place(alice).await),
            "at once, not after the wait"
        );
        assert!(
            budget.place(bob).await.is_ok(),
            "the others' places are theirs"
        );
        drop(hers);
        assert!(budget.place(alice).await.is_ok());
    }

    #[tokio::test]
    async fn someone_holding_nothing_goes_before_accounts_that_loop() {
        // Four accounts that loop searches each hold a place and wait for another; four other
        // users hold the rest. Then a fifth user asks, last of all.
        let budget = Budget::new(8, WAIT);
        let loopers: Vec<UserId> = (0..4).map(|_| UserId::generate()).collect();
        let mut held = Vec::new();
        for user in loopers
            .iter()
            .copied()
            .chain((0..4).map(|_| UserId::generate()))
        {
            held.push(budget.place(user).await.unwrap());
        }
        let mut again = Vec::new();
        for &looper in &loopers {
            again.push(waiting(&budget, looper).await);
        }
        let victim = UserId::generate();
        let victims = waiting(&budget, victim).await;

        drop(held.pop());
        let place = victims.await.unwrap();
        assert_eq!(
            place.user, victim,
            "served before the loopers who came first"
        );
        drop(place);
        assert!(loopers.contains(&again.remove(0).await.unwrap().user));
    }

    #[tokio::test]
    async fn among_users_holding_as_much_the_one_served_longest_ago_goes_first() {
        let budget = Budget::new(1, WAIT);
        let (alice, bob, carol) = (UserId::generate(), UserId::generate(), UserId::generate());
        drop(budget.place(bob).await.unwrap());
        let held = budget.place(alice).await.unwrap();
        let bobs = waiting(&budget, bob).await;
        let carols = waiting(&budget, carol).await;

        drop(held);
        let place = carols.await.unwrap();
        assert_eq!(place.user, carol, "never served, though she came after Bob");
        drop(place);
        assert_eq!(bobs.await.unwrap().user, bob);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let budget = Budget::new(1, WAIT);
        let held = budget.place(UserId::generate()).await.unwrap();
        let mut queued = Vec::new();
        for _ in 0..4 {
            queued.push(waiting(&budget, UserId::generate()).await);
        }

        let started = Instant::now();
        assert!(refused(budget.place(UserId::generate()).await));
        assert!(started.elapsed() < WAIT, "not kept waiting to be refused");
        drop(held);
        for request in queued {
            drop(request.await.unwrap());
        }
        assert_eq!(budget.lock().free, 1);
        assert!(budget.lock().users.is_empty());
    }

    #[tokio::test]
    async fn a_place_given_as_the_wait_ends_is_handed_on() {
        let budget = Budget::new(1, WAIT);
        let (alice, bob, carol) = (UserId::generate(), UserId::generate(), UserId::generate());
        let held = budget.place(alice).await.unwrap();
        let bobs = waiting(&budget, bob).await;
        let carols = waiting(&budget, carol).await;
        // Bob's request goes away (its client's deadline) just after the place reached it.
        drop(held);
        bobs.abort();
        let _ = bobs.await;

        let place = tokio::time::timeout(Duration::from_secs(1), carols)
            .await
            .map(|joined| joined.unwrap());
        let given = match place {
            Ok(place) => place.user,
            // Bob's request had taken the place before it went: it was freed on the way out.
            Err(_) => unreachable!("Carol's request was left waiting"),
        };
        assert_eq!(given, carol);
    }
}
