//! The exporter knobs both pipelines share: [`ExportSettings`], with its [`RetrySettings`]
//! and [`Compression`]. Their defaults are written here once and validated here once.
//!
//! `tracing` and `user_tracing` each hold one `ExportSettings` flattened into their own
//! section, so in YAML the knobs sit directly under `tracing:` / `user_tracing:`. This module
//! owns the values and their checks only; the exporter that obeys them is `telemetry::export`.

use super::SettingsError;
use serde::Deserialize;
use std::time::Duration;

/// How a pipeline's exporter queues, batches and sends: the same knobs for both pipelines.
///
/// In YAML these keys sit directly in the pipeline's section (the struct is flattened):
///
/// ```
/// use foundations::telemetry::settings::{Compression, TelemetrySettings};
///
/// let settings = TelemetrySettings::from_yaml(
///     "tracing:\n  max_batch_size: 128\n  max_queue_size: null\n  compression: gzip\n",
/// )
/// .unwrap();
/// let export = &settings.tracing.export;
/// assert_eq!(export.max_batch_size, 128);
/// assert_eq!(export.max_queue_size, None);
/// assert_eq!(export.compression, Compression::Gzip);
/// assert_eq!(export.num_tasks, 1, "the default");
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
#[non_exhaustive]
pub struct ExportSettings {
    /// Bound of the finished-span queue; `null` is unbounded. Default: 1,000,000.
    #[serde(deserialize_with = "number::optional")]
    pub max_queue_size: Option<usize>,
    /// Exporter workers, each with at most one request in flight. Default: 1.
    #[serde(deserialize_with = "number::plain")]
    pub num_tasks: usize,
    /// Spans taken from the queue per batch. Default: 512.
    #[serde(deserialize_with = "number::plain")]
    pub max_batch_size: usize,
    /// Longest wait for a full batch before a partial one is sent, in milliseconds.
    /// Default: 200.
    #[serde(deserialize_with = "number::plain")]
    pub flush_interval_ms: u64,
    /// Timeout of one export request, in milliseconds. Default: 10,000.
    #[serde(deserialize_with = "number::plain")]
    pub request_timeout_ms: u64,
    /// When and how failed requests are retried.
    pub retry: RetrySettings,
    /// Request body compression. Default: `none`.
    pub compression: Compression,
    /// Largest uncompressed request body; larger batches are split. Default: 64 MiB.
    #[serde(deserialize_with = "number::plain")]
    pub max_request_bytes: usize,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            max_queue_size: Some(1_000_000),
            num_tasks: 1,
            max_batch_size: 512,
            flush_interval_ms: 200,
            request_timeout_ms: 10_000,
            retry: RetrySettings::default(),
            compression: Compression::None,
            max_request_bytes: 64 * 1024 * 1024,
        }
    }
}

impl ExportSettings {
    /// Upper bound of `max_queue_size` (when set): ten million spans, a few GiB at most.
    pub const MAX_QUEUE_SIZE: usize = 10_000_000;
    /// Upper bound of `max_batch_size`: a batch buffer is allocated at this size up front.
    pub const MAX_BATCH_SIZE: usize = 1 << 16;
    /// Upper bound of `num_tasks`: each worker may hold a connection.
    pub const MAX_NUM_TASKS: usize = 64;
    /// Upper bound of `max_request_bytes`: the OTLP limit of 64 MiB.
    pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;
    /// Upper bound of `retry.max_attempts`.
    pub const MAX_ATTEMPTS: u32 = 100;
    /// Upper bound of every interval, timeout and backoff: 5 minutes.
    pub const MAX_INTERVAL_MS: u64 = 5 * 60 * 1000;

    /// `flush_interval_ms` as a duration.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    /// `request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Checks every knob; errors name the field as `{section}.{knob}` (e.g.
    /// `user_tracing.num_tasks`), `section` being the YAML section these settings sit in.
    pub(super) fn validate(&self, section: &str) -> Result<(), SettingsError> {
        let field = |name: &str| format!("{section}.{name}");
        if self.max_queue_size == Some(0) {
            return Err(SettingsError::new(
                field("max_queue_size"),
                "must be at least 1 (or null for unbounded)",
            ));
        }
        let positive = [
            ("num_tasks", self.num_tasks as u64),
            ("max_batch_size", self.max_batch_size as u64),
            ("flush_interval_ms", self.flush_interval_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_request_bytes", self.max_request_bytes as u64),
            ("retry.max_attempts", u64::from(self.retry.max_attempts)),
            ("retry.initial_backoff_ms", self.retry.initial_backoff_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(SettingsError::new(field(name), "must be greater than 0"));
            }
        }
        if let Some(queue) = self.max_queue_size
            && self.max_batch_size > queue
        {
            return Err(SettingsError::new(
                field("max_batch_size"),
                format!("must not exceed max_queue_size ({queue})"),
            ));
        }
        let bounded = [
            (
                "max_queue_size",
                self.max_queue_size.unwrap_or(0) as u64,
                Self::MAX_QUEUE_SIZE as u64,
            ),
            (
                "num_tasks",
                self.num_tasks as u64,
                Self::MAX_NUM_TASKS as u64,
            ),
            (
                "max_batch_size",
                self.max_batch_size as u64,
                Self::MAX_BATCH_SIZE as u64,
            ),
            (
                "flush_interval_ms",
                self.flush_interval_ms,
                Self::MAX_INTERVAL_MS,
            ),
            (
                "request_timeout_ms",
                self.request_timeout_ms,
                Self::MAX_INTERVAL_MS,
            ),
            (
                "max_request_bytes",
                self.max_request_bytes as u64,
                Self::MAX_REQUEST_BYTES as u64,
            ),
            (
                "retry.max_attempts",
                u64::from(self.retry.max_attempts),
                Self::MAX_ATTEMPTS.into(),
            ),
            (
                "retry.initial_backoff_ms",
                self.retry.initial_backoff_ms,
                Self::MAX_INTERVAL_MS,
            ),
            (
                "retry.max_backoff_ms",
                self.retry.max_backoff_ms,
                Self::MAX_INTERVAL_MS,
            ),
            (
                "retry.max_retry_after_ms",
                self.retry.max_retry_after_ms,
                Self::MAX_INTERVAL_MS,
            ),
        ];
        for (name, value, max) in bounded {
            if value > max {
                return Err(SettingsError::new(
                    field(name),
                    format!("must be at most {max}"),
                ));
            }
        }
        if self.retry.max_backoff_ms < self.retry.initial_backoff_ms {
            return Err(SettingsError::new(
                field("retry.max_backoff_ms"),
                "must not be less than retry.initial_backoff_ms",
            ));
        }
        Ok(())
    }
}

/// Retry policy of an exporter.
///
/// Only what the OTLP specification calls retryable is retried: a connection that could not
/// be made or was dropped, a request that timed out, and the statuses 429, 502, 503 and 504.
/// A connection that cannot be made at all (for example, the receiver's socket does not
/// exist yet) is retried without limit while spans wait in the queue; the other failures at
/// most `max_attempts` times.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetrySettings {
    /// Attempts per request, the first included. Default: 5.
    #[serde(deserialize_with = "number::plain")]
    pub max_attempts: u32,
    /// Backoff before the first retry, in milliseconds; doubled per attempt, plus up to 50%
    /// random jitter. Default: 100.
    #[serde(deserialize_with = "number::plain")]
    pub initial_backoff_ms: u64,
    /// Longest backoff, in milliseconds. Default: 5,000.
    #[serde(deserialize_with = "number::plain")]
    pub max_backoff_ms: u64,
    /// Longest wait a `Retry-After` header may impose, in milliseconds. Default: 30,000.
    #[serde(deserialize_with = "number::plain")]
    pub max_retry_after_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff_ms: 100,
            max_backoff_ms: 5_000,
            max_retry_after_ms: 30_000,
        }
    }
}

/// Compression of request bodies.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Uncompressed (the default).
    #[default]
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// The numeric knobs, read as saphyr reads them without `flatten`.
///
/// serde hands a flattened struct its values buffered by their YAML type, so `"512"` (quoted)
/// arrives as a string, where saphyr alone reads a quoted number into an integer field.
/// These accept both, parsing a string with saphyr's own scalar rules (`0x10`, `1_000`).
pub(super) mod number {
    use serde::de::{self, DeserializeOwned, Deserializer, Unexpected, Visitor};
    use std::fmt;
    use std::marker::PhantomData;

    pub(in crate::telemetry::settings) fn plain<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: DeserializeOwned + TryFrom<u64> + TryFrom<i64>,
    {
        deserializer.deserialize_any(Number(PhantomData))
    }

    pub(in crate::telemetry::settings) fn optional<'de, D, T>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: DeserializeOwned + TryFrom<u64> + TryFrom<i64>,
    {
        deserializer.deserialize_option(Optional(PhantomData))
    }

    struct Number<T>(PhantomData<T>);

    impl<T> Visitor<'_> for Number<T>
    where
        T: DeserializeOwned + TryFrom<u64> + TryFrom<i64>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer in range")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
            T::try_from(value).map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
            T::try_from(value).map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
            serde_saphyr::from_str(value)
                .map_err(|_| E::invalid_value(Unexpected::Str(value), &self))
        }
    }

    struct Optional<T>(PhantomData<T>);

    impl<'de, T> Visitor<'de> for Optional<T>
    where
        T: DeserializeOwned + TryFrom<u64> + TryFrom<i64>,
    {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer in range, or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
            plain(deserializer).map(Some)
        }
    }
}
