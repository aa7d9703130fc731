//! A link's sending rate: never above the configured maximum, halved when the carrier answers
//! with flow control, and recovered step by step while it does not (additive increase,
//! multiplicative decrease — the carrier gets room at once, and no resend storm follows).

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// How long without flow control before the rate grows one step.
const CALM: Duration = Duration::from_secs(1);
/// Answers within this long of a decrease are to sends made before it: they do not halve again.
const SETTLE: Duration = Duration::from_millis(250);

pub struct AdaptiveRate {
    max: u32,
    state: Mutex<State>,
}

struct State {
    current: u32,
    limiter: Arc<DefaultDirectRateLimiter>,
    last_change: Instant,
    last_throttle: Option<Instant>,
}

/// How a rate of `rate` per second is spread: a burst of what one millisecond allows (at least
/// one), refilled at `rate` less that burst per second.
///
/// Why a burst: a send that must wait sleeps on tokio's timer, which wakes no sooner than a
/// millisecond later; with room for one send only, a link configured above 1,000/s would get no
/// more than 1,000/s. Why the refill is lowered by the burst: over any one-second window the
/// limiter lets through at most the burst plus a second's refill, so the carrier never sees more
/// than `rate` in a second.
fn quota(rate: u32) -> Quota {
    let rate = rate.max(1);
    let burst = (rate / 1000).max(1);
    let refill = NonZeroU32::new(rate.saturating_sub(burst)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(refill).allow_burst(burst)
}

fn limiter(rate: u32) -> Arc<DefaultDirectRateLimiter> {
    Arc::new(RateLimiter::direct(quota(rate)))
}

impl AdaptiveRate {
    pub fn new(max_per_second: u32) -> Self {
        let max = max_per_second.max(1);
        AdaptiveRate {
            max,
            state: Mutex::new(State {
                current: max,
                limiter: limiter(max),
                last_change: Instant::now(),
                last_throttle: None,
            }),
        }
    }

    /// Waits for the next send's turn, on tokio's timer: governor's own wait sleeps on a timer
    /// thread of its own, which every waiting send woke with a system call and two context
    /// switches (profiled: a sixth of a busy link's work).
    pub async fn until_ready(&self) {
        let limiter = match self.state.lock() {
            Ok(mut s) => {
                self.recover(&mut s, Instant::now());
                s.limiter.clone()
            }
            Err(_) => return,
        };
        while let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(limiter.clock().now());
            tokio::time::sleep(wait).await;
        }
    }

    /// The carrier answered with flow control: halve the rate (at most once per [`SETTLE`], since
    /// the answers to sends already under way arrive together).
    pub fn throttled(&self) {
        if let Ok(mut s) = self.state.lock() {
            let now = Instant::now();
            s.last_throttle = Some(now);
            if now.duration_since(s.last_change) >= SETTLE || s.current == self.max {
                let next = (s.current / 2).max(1);
                if next != s.current {
                    tracing::info!(
                        from = s.current,
                        to = next,
                        "carrier flow control: slowing down"
                    );
                    s.current = next;
                    s.limiter = limiter(next);
                }
                s.last_change = now;
            }
        }
    }

    /// Whether the carrier asked to slow down within `window`.
    pub fn congested_within(&self, window: Duration) -> bool {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.last_throttle)
            .is_some_and(|t| t.elapsed() < window)
    }

    pub fn current(&self) -> u32 {
        self.state.lock().map(|s| s.current).unwrap_or(self.max)
    }

    fn recover(&self, s: &mut State, now: Instant) {
        if s.current >= self.max || now.duration_since(s.last_change) < CALM {
            return;
        }
        let calm_since = s
            .last_throttle
            .is_none_or(|t| now.duration_since(t) >= CALM);
        if calm_since {
            let step = (self.max / 20).max(1);
            s.current = (s.current + step).min(self.max);
            s.limiter = limiter(s.current);
            s.last_change = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_control_halves_and_calm_recovers_up_to_the_maximum() {
        let rate = AdaptiveRate::new(100);
        rate.throttled();
        assert_eq!(rate.current(), 50);
        // A burst of answers to sends already under way halves only once.
        rate.throttled();
        assert_eq!(rate.current(), 50);
        let mut s = rate.state.lock().unwrap();
        let later = Instant::now() + Duration::from_secs(2);
        rate.recover(&mut s, later);
        assert_eq!(s.current, 55);
        for i in 0..20 {
            rate.recover(&mut s, later + CALM * (i + 1));
        }
        assert_eq!(s.current, 100, "never above the configured maximum");
    }

    #[test]
    fn a_second_never_holds_more_than_the_rate() {
        for rate in [1u32, 3, 20, 999, 1000, 2000, 10_000] {
            let q = quota(rate);
            let burst = q.burst_size().get();
            let refill_per_second =
                (Duration::from_secs(1).as_nanos() / q.replenish_interval().as_nanos()) as u32;
            assert!(
                burst + refill_per_second <= rate.max(1) + 1,
                "rate {rate}: burst {burst} + refill {refill_per_second}"
            );
            assert!(
                refill_per_second + burst >= rate.max(1) * 99 / 100,
                "rate {rate} too slow"
            );
            // A waiting send sleeps at least a millisecond: the burst must cover a millisecond's
            // sends, or the link falls short of its rate.
            assert!(burst >= rate / 1000, "rate {rate}: burst {burst}");
        }
    }

    #[test]
    fn the_rate_never_drops_below_one_per_second() {
        let rate = AdaptiveRate::new(3);
        for _ in 0..5 {
            rate.throttled();
            rate.state.lock().unwrap().last_change -= SETTLE;
        }
        assert_eq!(rate.current(), 1);
    }
}
