//! When a failed request is retried, and after how long, as the OTLP specification says:
//! over HTTP only 429, 502, 503 and 504 are retryable statuses, and `Retry-After` (seconds or
//! an HTTP date) is honoured up to a cap; over gRPC only `CANCELLED`, `DEADLINE_EXCEEDED`,
//! `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE`, `DATA_LOSS`, and `RESOURCE_EXHAUSTED` when the
//! server sent a `google.rpc.RetryInfo`, whose `retry_delay` is honoured up to the same cap.
//! Backoff is exponential with jitter and capped.
//!
//! This module owns these decisions, and [`wait_to_retry`], the step both transports take
//! between attempts; sending is the transports'.

use super::stats::{Counters, add};
use crate::telemetry::settings::RetrySettings;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use std::future::Future;
use std::time::{Duration, SystemTime};
use tonic::Code;
use tonic_types::StatusExt;

/// A status the specification allows to retry.
pub(super) fn is_retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Whether a gRPC failure is retried: `None` when it is final, else the server's
/// `RetryInfo.retry_delay` (capped by `max_retry_after_ms`) if it sent one.
pub(super) fn grpc_retry(
    status: &tonic::Status,
    retry: &RetrySettings,
) -> Option<Option<Duration>> {
    let delay = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .map(|delay| delay.min(Duration::from_millis(retry.max_retry_after_ms)));
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Some(delay),
        // Only a server that says when to come back is asking for a retry.
        Code::ResourceExhausted if delay.is_some() => Some(delay),
        _ => None,
    }
}

/// Exponential backoff for the `attempt`-th retry (1-based), capped, plus up to 50% jitter.
pub(super) fn backoff(retry: &RetrySettings, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let base = retry
        .initial_backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(retry.max_backoff_ms);
    let jitter = rand::random_range(0..=base / 2);
    Duration::from_millis(base + jitter)
}

/// `Retry-After` as seconds or an HTTP date, capped; `None` when unparseable.
pub(super) fn retry_after(value: &HeaderValue, retry: &RetrySettings) -> Option<Duration> {
    let value = value.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    };
    Some(wait.min(Duration::from_millis(retry.max_retry_after_ms)))
}

/// After failed attempt number `attempts` of a request of `spans` spans: gives up (counted
/// as `retries_exhausted`) once `max_attempts` is reached, else waits `delay` and returns
/// `true` to try again, unless `aborted` completes first (counted as `at_shutdown`).
pub(super) async fn wait_to_retry(
    attempts: u32,
    delay: Duration,
    spans: usize,
    retry: &RetrySettings,
    counters: &Counters,
    aborted: impl Future<Output = ()>,
) -> bool {
    if attempts >= retry.max_attempts {
        add(&counters.retries_exhausted, spans);
        log::error!(
            "foundations exporter: giving up after {attempts} attempts; dropped {spans} spans"
        );
        return false;
    }
    add(&counters.retries, 1);
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = aborted => {
            add(&counters.at_shutdown, spans);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates_and_is_capped() {
        let retry = RetrySettings::default();
        let header = HeaderValue::from_static("1");
        assert_eq!(retry_after(&header, &retry), Some(Duration::from_secs(1)));
        let huge = HeaderValue::from_static("86400");
        assert_eq!(retry_after(&huge, &retry), Some(Duration::from_secs(30)));
        let date = HeaderValue::from_str(&httpdate::fmt_http_date(
            SystemTime::now() + Duration::from_secs(5),
        ))
        .unwrap();
        let wait = retry_after(&date, &retry).unwrap();
        assert!(
            wait <= Duration::from_secs(5) && wait >= Duration::from_secs(3),
            "{wait:?}"
        );
        assert_eq!(retry_after(&HeaderValue::from_static("soon"), &retry), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let retry = RetrySettings::default();
        for attempt in 1..=30 {
            let base = (100u64 << (attempt - 1).min(20)).min(5_000);
            let wait = backoff(&retry, attempt).as_millis() as u64;
            assert!(
                (base..=base + base / 2).contains(&wait),
                "{attempt}: {wait}"
            );
        }
    }

    #[test]
    fn only_the_specified_grpc_codes_are_retried_and_retry_info_is_honoured() {
        use tonic_types::{ErrorDetails, StatusExt};
        let retry = RetrySettings::default();
        for code in [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unavailable,
            Code::DataLoss,
        ] {
            let status = tonic::Status::new(code, "");
            assert_eq!(grpc_retry(&status, &retry), Some(None), "{code:?}");
        }
        for code in [
            Code::Unknown,
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Unimplemented,
            Code::Internal,
            Code::Unauthenticated,
        ] {
            let status = tonic::Status::new(code, "");
            assert_eq!(grpc_retry(&status, &retry), None, "{code:?}");
        }
        let with_delay = |code, delay| {
            tonic::Status::with_error_details(
                code,
                "slow down",
                ErrorDetails::with_retry_info(Some(delay)),
            )
        };
        let status = with_delay(Code::ResourceExhausted, Duration::from_millis(1500));
        assert_eq!(
            grpc_retry(&status, &retry),
            Some(Some(Duration::from_millis(1500)))
        );
        let status = with_delay(Code::Unavailable, Duration::from_secs(3600));
        assert_eq!(
            grpc_retry(&status, &retry),
            Some(Some(Duration::from_secs(30))),
            "capped"
        );
        let status = with_delay(Code::InvalidArgument, Duration::from_secs(1));
        assert_eq!(
            grpc_retry(&status, &retry),
            None,
            "final whatever the details"
        );
    }

    #[test]
    fn only_the_specified_statuses_are_retried() {
        for code in [429, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap()));
        }
        for code in [400, 401, 403, 404, 413, 500, 501] {
            assert!(!is_retryable(StatusCode::from_u16(code).unwrap()));
        }
    }
}
