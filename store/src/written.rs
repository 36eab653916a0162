//! What a committed write returns: its value, and whether it left jobs for the relay (decision 12).
//!
//! Every store function whose transaction may insert `jobs` rows (or make some due) returns
//! [`Written`]. The value is only reachable through a method that names what happens to the
//! wake-up: the server hands the whole thing to its one waking function, tests and tools that
//! do not run a relay say so with [`Written::without_wake`]. `#[must_use]` makes a dropped
//! result a warning (an error under `clippy -D warnings`), so no caller can forget the wake.

/// The value of a committed write, and whether its transaction wrote jobs.
#[must_use = "jobs may have been committed: hand this to the server's waking function, or call `without_wake`"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written<T> {
    value: T,
    wrote_jobs: bool,
}

impl<T> Written<T> {
    /// A write that inserted jobs or made some due exactly when `wrote_jobs`.
    pub(crate) fn new(value: T, wrote_jobs: bool) -> Self {
        Self { value, wrote_jobs }
    }

    /// A write whose transaction inserted jobs or made some due.
    pub(crate) fn with_jobs(value: T) -> Self {
        Self::new(value, true)
    }

    /// The same write with its value changed by `f`.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Written<U> {
        Written::new(f(self.value), self.wrote_jobs)
    }
    /// The value, to look at before the wake-up.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// Whether the committed transaction inserted jobs or made some due.
    pub fn wrote_jobs(&self) -> bool {
        self.wrote_jobs
    }

    /// The value, after calling `wake` if jobs were written: the server's one waking function.
    pub fn waking(self, wake: impl FnOnce()) -> T {
        if self.wrote_jobs {
            wake();
        }
        self.value
    }

    /// The value, leaving the jobs to the relays' tick: for tests, benchmarks and seeding,
    /// where nothing waits on a wake-up.
    pub fn without_wake(self) -> T {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waking_calls_the_wake_only_when_jobs_were_written() {
        let mut woken = 0;
        assert_eq!(Written::new("sent", true).waking(|| woken += 1), "sent");
        assert_eq!(
            Written::new("unchanged", false).waking(|| woken += 1),
            "unchanged"
        );
        assert_eq!(woken, 1);
    }
}
