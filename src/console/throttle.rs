//! Sign-in rate limiting per account: after [`FREE_TRIES`] wrong passwords in a row, the account
//! cannot sign in for a delay that doubles with each further failure (from [`FIRST_DELAY`] up to
//! [`MAX_DELAY`]); a right password, once the delay has passed, starts the count again. In: an
//! account name and the outcome of each try. Out: whether a try may be checked now, or how long
//! to wait. Names that are not accounts are not tracked (nothing to guess there, and a flood of
//! made-up names must not grow this table). Kept in this process's memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords in a row before the account must wait.
pub const FREE_TRIES: u32 = 5;
/// The wait after the [`FREE_TRIES`]th wrong password; each later one doubles it.
pub const FIRST_DELAY: Duration = Duration::from_secs(30);
/// The longest wait.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The failures of each account.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, Failures>>,
}

/// The wait after `count` wrong passwords in a row.
fn delay(count: u32) -> Duration {
    if count < FREE_TRIES {
        return Duration::ZERO;
    }
    let doublings = (count - FREE_TRIES).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(wait)` while `account` must wait before its password is checked again.
    pub fn check(&self, account: &str, now: Instant) -> Result<(), Duration> {
        match self.lock().get(account) {
            Some(f) => {
                let until = f.last + delay(f.count);
                if now < until {
                    Err(until - now)
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// Records a wrong password for `account`.
    pub fn failed(&self, account: &str, now: Instant) {
        let mut all = self.lock();
        let f = all.entry(account.to_string()).or_insert(Failures {
            count: 0,
            last: now,
        });
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    /// Records a right password: the count starts again.
    pub fn succeeded(&self, account: &str) {
        self.lock().remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_wrong_passwords_are_free_then_the_account_waits() {
        let t = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..FREE_TRIES - 1 {
            t.failed("ops", t0);
            assert_eq!(t.check("ops", t0), Ok(()));
        }
        t.failed("ops", t0);
        assert_eq!(t.check("ops", t0), Err(FIRST_DELAY));
        assert_eq!(t.check("other", t0), Ok(()), "per account");
        assert_eq!(t.check("ops", t0 + FIRST_DELAY), Ok(()));
        t.failed("ops", t0 + FIRST_DELAY);
        assert_eq!(t.check("ops", t0 + FIRST_DELAY), Err(FIRST_DELAY * 2));
        t.succeeded("ops");
        assert_eq!(t.check("ops", t0 + FIRST_DELAY), Ok(()));
    }

    #[test]
    fn the_wait_grows_to_a_bound() {
        assert_eq!(delay(FREE_TRIES + 40), MAX_DELAY);
        assert!(delay(FREE_TRIES + 1) > delay(FREE_TRIES));
    }
}
