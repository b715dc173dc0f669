//! Retries: capped exponential backoff with jitter; a server's `Retry-After` is honoured.
//!
//! Retried: connection errors, HTTP 429 and 5xx (codex retries 5xx and transport errors; this
//! CLI also retries 429, waiting what the server asks). Retry `n` (1-based) waits
//! `min(base · 2^(n-1), cap)` scaled by a random factor in `[0.75, 1.25)`; a `retry-after-ms` or
//! `Retry-After` header (seconds or an HTTP date) replaces that delay, up to
//! [`RetryPolicy::max_retry_after`]: a server asking for longer ends the retries at once (the
//! error says what it asked). Streams that break before any output are retried up to
//! `stream_max_retries` times with the same delays.

use std::time::{Duration, SystemTime};

/// Default `request_max_retries` (codex's).
pub const DEFAULT_REQUEST_MAX_RETRIES: u64 = 4;
/// Default `stream_max_retries` (codex's).
pub const DEFAULT_STREAM_MAX_RETRIES: u64 = 5;
/// Hard cap on both (codex's).
pub const MAX_RETRIES: u64 = 100;

/// A provider's retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub request_max_retries: u64,
    pub stream_max_retries: u64,
    /// First backoff (200 ms, codex's).
    pub base_delay: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
    /// Largest `Retry-After` waited for.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::from_config(None, None)
    }
}

impl RetryPolicy {
    pub fn from_config(request_max_retries: Option<u64>, stream_max_retries: Option<u64>) -> Self {
        RetryPolicy {
            request_max_retries: request_max_retries
                .unwrap_or(DEFAULT_REQUEST_MAX_RETRIES)
                .min(MAX_RETRIES),
            stream_max_retries: stream_max_retries
                .unwrap_or(DEFAULT_STREAM_MAX_RETRIES)
                .min(MAX_RETRIES),
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }

    /// The backoff before retry `n` (1-based); `jitter` in `[0, 1)` picks the factor.
    pub fn backoff(&self, n: u32, jitter: f64) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1)));
        let capped = exp.min(self.max_delay);
        capped.mul_f64(0.75 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// The wait before retry `n`: the server's `retry_after` when given (`Err` with it when it
    /// exceeds [`RetryPolicy::max_retry_after`]), else [`RetryPolicy::backoff`].
    pub fn delay(
        &self,
        n: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Result<Duration, Duration> {
        match retry_after {
            Some(d) if d > self.max_retry_after => Err(d),
            Some(d) => Ok(d),
            None => Ok(self.backoff(n, jitter)),
        }
    }
}

/// The server's requested wait: `retry-after-ms` (milliseconds, OpenAI's), else `Retry-After`
/// (delta-seconds or an HTTP date). Unparsable values are ignored.
pub fn retry_after(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms.min(1e9) / 1000.0));
        }
    }
    let v = text("retry-after")?;
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(when.timestamp()).ok()?);
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.5), Duration::from_millis(200));
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(400));
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(800));
        assert_eq!(p.backoff(30, 0.5), Duration::from_secs(10));
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(150));
        assert!(p.backoff(1, 0.999_999) < Duration::from_millis(250));
        assert_eq!(p.backoff(u32::MAX, 0.5), Duration::from_secs(10));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_limit() {
        let p = RetryPolicy::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(1500)));
        let mut h = http::HeaderMap::new();
        // 2001-09-09T01:46:40Z is 1e9; 5 s later
        h.insert(
            "retry-after",
            "Sun, 09 Sep 2001 01:46:45 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(5)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3)), 0.5),
            Ok(Duration::from_secs(3))
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600)), 0.5),
            Err(Duration::from_secs(3600))
        );
        assert_eq!(p.delay(2, None, 0.5), Ok(Duration::from_millis(400)));
    }

    #[test]
    fn limits_are_capped() {
        let p = RetryPolicy::from_config(Some(1000), Some(0));
        assert_eq!((p.request_max_retries, p.stream_max_retries), (100, 0));
    }
}
