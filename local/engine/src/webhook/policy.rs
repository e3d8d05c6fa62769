//! An HTTP/S subscription's delivery policy, as SNS reads its `DeliveryPolicy`: when a failed
//! attempt is tried again, how often the endpoint may be called, and the content type.
//!
//! Without one, SNS's default HTTP/S policy: 3 retries, 20 s apart (`minDelayTarget` and
//! `maxDelayTarget` 20, `numRetries` 3, linear backoff). With one, its four phases: retries with
//! no delay (`numNoDelayRetries`), then `numMinDelayRetries` at `minDelayTarget`, then the backoff
//! phase from `minDelayTarget` to `maxDelayTarget`, then `numMaxDelayRetries` at `maxDelayTarget`;
//! `numRetries` counts them all. SNS's limits are kept: delays of 1 to 3,600 s, at most 100
//! retries, at most 3,600 s of delays in all. SNS documents the `linear` backoff's shape (even
//! steps from the minimum to the maximum) but not the others'; `exponential` is taken as a
//! constant factor per retry from the minimum to the maximum, and `arithmetic` and `geometric`
//! are refused. SNS jitters its delays; the engine does not.

use std::time::Duration;

use serde::Deserialize;

/// Seconds: SNS's bounds on a delay, and on the delays of one message in all.
const MAX_DELAY_S: u64 = 3_600;
const MAX_RETRIES: u32 = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub retries: u32,
    pub no_delay_retries: u32,
    pub min_delay_retries: u32,
    pub max_delay_retries: u32,
    pub backoff: Backoff,
    /// `throttlePolicy.maxReceivesPerSecond`: the least time between two attempts.
    pub min_interval: Duration,
    /// `requestPolicy.headerContentType`, else `text/plain; charset=UTF-8`.
    pub content_type: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Linear,
    Exponential,
}

/// SNS's default content type for HTTP/S deliveries.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";

impl Default for DeliveryPolicy {
    /// SNS's default HTTP/S policy.
    fn default() -> Self {
        DeliveryPolicy {
            min_delay: Duration::from_secs(20),
            max_delay: Duration::from_secs(20),
            retries: 3,
            no_delay_retries: 0,
            min_delay_retries: 0,
            max_delay_retries: 0,
            backoff: Backoff::Linear,
            min_interval: Duration::ZERO,
            content_type: DEFAULT_CONTENT_TYPE.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyJson {
    healthy_retry_policy: Option<RetryJson>,
    throttle_policy: Option<ThrottleJson>,
    request_policy: Option<RequestJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetryJson {
    min_delay_target: Option<u64>,
    max_delay_target: Option<u64>,
    num_retries: Option<u32>,
    num_no_delay_retries: Option<u32>,
    num_min_delay_retries: Option<u32>,
    num_max_delay_retries: Option<u32>,
    backoff_function: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThrottleJson {
    max_receives_per_second: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RequestJson {
    header_content_type: Option<String>,
}

impl DeliveryPolicy {
    /// A `DeliveryPolicy`'s JSON, over SNS's defaults; an error says what is wrong with it.
    pub fn parse(json: &str) -> Result<DeliveryPolicy, String> {
        let parsed: PolicyJson = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut policy = DeliveryPolicy::default();
        if let Some(r) = parsed.healthy_retry_policy {
            let min = r.min_delay_target.unwrap_or(20);
            let max = r.max_delay_target.unwrap_or(min.max(20));
            if !(1..=max).contains(&min) || max > MAX_DELAY_S {
                return Err(format!(
                    "minDelayTarget {min} and maxDelayTarget {max}: need 1 <= min <= max <= {MAX_DELAY_S}"
                ));
            }
            policy.min_delay = Duration::from_secs(min);
            policy.max_delay = Duration::from_secs(max);
            policy.retries = r.num_retries.unwrap_or(3);
            policy.no_delay_retries = r.num_no_delay_retries.unwrap_or(0);
            policy.min_delay_retries = r.num_min_delay_retries.unwrap_or(0);
            policy.max_delay_retries = r.num_max_delay_retries.unwrap_or(0);
            if policy.retries > MAX_RETRIES {
                return Err(format!(
                    "numRetries {} is over {MAX_RETRIES}",
                    policy.retries
                ));
            }
            let phases =
                policy.no_delay_retries + policy.min_delay_retries + policy.max_delay_retries;
            if phases > policy.retries {
                return Err(format!(
                    "numNoDelayRetries + numMinDelayRetries + numMaxDelayRetries ({phases}) is over numRetries ({})",
                    policy.retries
                ));
            }
            policy.backoff = match r.backoff_function.as_deref().unwrap_or("linear") {
                "linear" => Backoff::Linear,
                "exponential" => Backoff::Exponential,
                other => {
                    return Err(format!(
                        "backoffFunction {other}: the local engine emulates linear and exponential \
                         (SNS does not document the shape of the others)"
                    ))
                }
            };
            let total: Duration = (1..=policy.retries).map(|n| policy.delay(n)).sum();
            if total > Duration::from_secs(MAX_DELAY_S) {
                return Err(format!(
                    "its delays add up to {} s, over SNS's limit of {MAX_DELAY_S} s",
                    total.as_secs()
                ));
            }
        }
        if let Some(rate) = parsed
            .throttle_policy
            .and_then(|t| t.max_receives_per_second)
        {
            if rate == 0 {
                return Err("maxReceivesPerSecond must be 1 or more".into());
            }
            policy.min_interval = Duration::from_secs(1) / rate;
        }
        if let Some(content_type) = parsed.request_policy.and_then(|r| r.header_content_type) {
            axum::http::HeaderValue::from_str(&content_type)
                .map_err(|_| format!("headerContentType {content_type:?} is not a header value"))?;
            policy.content_type = content_type;
        }
        Ok(policy)
    }

    /// The pause before retry `n` (the first retry is 1).
    pub fn delay(&self, n: u32) -> Duration {
        let backoff_retries =
            self.retries - self.no_delay_retries - self.min_delay_retries - self.max_delay_retries;
        if n <= self.no_delay_retries {
            return Duration::ZERO;
        }
        let n = n - self.no_delay_retries;
        if n <= self.min_delay_retries {
            return self.min_delay;
        }
        let n = n - self.min_delay_retries;
        if n > backoff_retries {
            return self.max_delay;
        }
        if backoff_retries == 1 {
            return self.min_delay;
        }
        // Where this retry is in the backoff phase, from 0 (the first) to 1 (the last).
        let at = (n - 1) as f64 / (backoff_retries - 1) as f64;
        let (min, max) = (self.min_delay.as_secs_f64(), self.max_delay.as_secs_f64());
        let seconds = match self.backoff {
            Backoff::Linear => min + (max - min) * at,
            Backoff::Exponential => min * (max / min).powf(at),
        };
        Duration::from_secs_f64(seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_three_retries_twenty_seconds_apart() {
        let p = DeliveryPolicy::default();
        let delays: Vec<u64> = (1..=p.retries).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(delays, [20, 20, 20]);
    }

    /// SNS's own example: maximum delay 40, the rest default: 20, 30 then 40 seconds.
    #[test]
    fn linear_backoff_steps_evenly() {
        let p = DeliveryPolicy::parse(r#"{"healthyRetryPolicy":{"maxDelayTarget":40}}"#).unwrap();
        let delays: Vec<u64> = (1..=p.retries).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(delays, [20, 30, 40]);
    }

    /// SNS's documented sample policy: 3 immediate, 2 at 1 s, 10 backing off from 1 to 60 s,
    /// 35 at 60 s (50 retries).
    #[test]
    fn four_phases() {
        let p = DeliveryPolicy::parse(
            r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":60,"numRetries":50,
                "numNoDelayRetries":3,"numMinDelayRetries":2,"numMaxDelayRetries":35,
                "backoffFunction":"exponential"},"throttlePolicy":{"maxReceivesPerSecond":10}}"#,
        )
        .unwrap();
        let delays: Vec<f64> = (1..=50).map(|n| p.delay(n).as_secs_f64()).collect();
        assert_eq!(delays[..5], [0.0, 0.0, 0.0, 1.0, 1.0]);
        assert_eq!(delays[5], 1.0, "the backoff starts at the minimum");
        assert!((delays[14] - 60.0).abs() < 1e-9, "and ends at the maximum");
        assert!(delays[5..15].windows(2).all(|w| w[1] > w[0]));
        assert_eq!(delays[15..], [60.0; 35]);
        assert_eq!(p.min_interval, Duration::from_millis(100));
    }

    #[test]
    fn bad_policies_are_refused() {
        for bad in [
            r#"{"healthyRetryPolicy":{"minDelayTarget":0}}"#,
            r#"{"healthyRetryPolicy":{"minDelayTarget":30,"maxDelayTarget":20}}"#,
            r#"{"healthyRetryPolicy":{"numRetries":101,"minDelayTarget":1,"maxDelayTarget":1}}"#,
            r#"{"healthyRetryPolicy":{"numRetries":2,"numNoDelayRetries":3}}"#,
            r#"{"healthyRetryPolicy":{"backoffFunction":"geometric"}}"#,
            r#"{"healthyRetryPolicy":{"numRetries":3,"minDelayTarget":3600,"maxDelayTarget":3600}}"#,
            r#"{"unknownPolicy":{}}"#,
            r#"{"throttlePolicy":{"maxReceivesPerSecond":0}}"#,
        ] {
            assert!(DeliveryPolicy::parse(bad).is_err(), "{bad}");
        }
    }
}
