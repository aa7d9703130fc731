//! Per-client submission limits from the policy: a rate per node (one governor limiter per client) and
//! a ceiling on the client's messages not yet terminal (from the projection's replicated count).
//! A refused submission gets [`ServiceError::Exhausted`] with a retry hint and writes nothing.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use super::error::ServiceError;
use crate::policy::DispatchPolicy;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

type SharedLimiter = std::sync::Arc<DefaultDirectRateLimiter>;

/// One limiter per client with a rate, with the rate it was built for: a policy that changes the
/// rate replaces it. Only clients the policy names get one, so the map is bounded by the policy.
#[derive(Default)]
pub struct ClientRates {
    limiters: Mutex<std::collections::HashMap<String, (u32, SharedLimiter)>>,
}

fn exhausted(rule: String, retry_after: Duration) -> ServiceError {
    ServiceError::Exhausted { rule, retry_after }
}

impl ClientRates {
    /// Admits `count` submissions of `client` now, or refuses them all.
    pub fn admit(
        &self,
        policy: &DispatchPolicy,
        client: &str,
        count: u32,
        pending: impl FnOnce() -> u64,
    ) -> Result<(), ServiceError> {
        let Some(quota) = policy.clients.get(client) else {
            return Ok(());
        };
        if quota.max_queued > 0 {
            let pending = pending();
            if pending + u64::from(count) > quota.max_queued {
                return Err(exhausted(
                    format!(
                        "client {client:?} has {pending} messages not yet sent or finished; its quota is {} (max-queued)",
                        quota.max_queued
                    ),
                    Duration::from_secs(1),
                ));
            }
        }
        let Some(rate) = NonZeroU32::new(quota.max_per_second) else {
            return Ok(());
        };
        let limiter = {
            let Ok(mut map) = self.limiters.lock() else {
                return Ok(());
            };
            let entry = map.entry(client.to_string()).or_insert_with(|| {
                (
                    rate.get(),
                    std::sync::Arc::new(RateLimiter::direct(Quota::per_second(rate))),
                )
            });
            if entry.0 != rate.get() {
                *entry = (
                    rate.get(),
                    std::sync::Arc::new(RateLimiter::direct(Quota::per_second(rate))),
                );
            }
            entry.1.clone()
        };
        let n = NonZeroU32::new(count.max(1)).unwrap_or(NonZeroU32::MIN);
        match limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(exhausted(
                format!("client {client:?} is over its rate of {rate} submissions per second"),
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            Err(_) => Err(exhausted(
                format!("a batch of {count} is more than client {client:?}'s rate of {rate} per second allows at once: send at most {rate} per call"),
                Duration::from_secs(1),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ClientQuota;

    fn policy(max_per_second: u32, max_queued: u64) -> DispatchPolicy {
        let mut p = DispatchPolicy::default();
        p.clients.insert(
            "erp".into(),
            ClientQuota {
                max_per_second,
                max_queued,
            },
        );
        p
    }

    #[test]
    fn unknown_clients_are_not_limited() {
        let rates = ClientRates::default();
        for _ in 0..1000 {
            rates.admit(&policy(1, 1), "crm", 1, || 10_000).unwrap();
        }
    }

    #[test]
    fn the_queued_ceiling_refuses_with_a_retry_hint() {
        let rates = ClientRates::default();
        rates.admit(&policy(0, 10), "erp", 3, || 7).unwrap();
        let refused = rates.admit(&policy(0, 10), "erp", 4, || 7).unwrap_err();
        let ServiceError::Exhausted { rule, retry_after } = &refused else {
            panic!("{refused:?}");
        };
        assert!(rule.contains("max-queued"), "{rule}");
        assert!(!retry_after.is_zero());
    }

    #[test]
    fn the_rate_refuses_beyond_its_burst() {
        let rates = ClientRates::default();
        let p = policy(5, 0);
        let admitted = (0..20)
            .filter(|_| rates.admit(&p, "erp", 1, || 0).is_ok())
            .count();
        assert_eq!(admitted, 5, "a burst of one second's worth, then refusals");
    }
}
