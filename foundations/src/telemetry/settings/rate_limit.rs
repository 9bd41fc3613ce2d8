//! The root-creation rate limit of a pipeline ([`RateLimitSettings`]), the same block under
//! `tracing:` and `user_tracing:`.
//!
//! This module owns the block and its check only; the limiter itself is the core's.

use super::SettingsError;
use serde::Deserialize;

/// How many roots per second a pipeline records at most (`rate_limit:`).
///
/// Roots past the rate start unsampled: the whole trace is then unsampled (never cut short
/// mid-trace), its outbound `traceparent` says so, and the root is counted in
/// `ExporterStats::roots_rate_limited`. A continued trace whose inbound flag says sampled is
/// limited too; only `StartTraceOptions::force_sampling` bypasses the limit.
///
/// ```
/// use foundations::telemetry::settings::TelemetrySettings;
///
/// let settings = TelemetrySettings::from_yaml(
///     "tracing:\n  rate_limit:\n    enabled: true\n    max_roots_per_second: 500\n",
/// )
/// .unwrap();
/// assert!(settings.tracing.rate_limit.enabled);
/// assert_eq!(settings.tracing.rate_limit.max_roots_per_second, 500);
///
/// let error = TelemetrySettings::from_yaml(
///     "tracing:\n  rate_limit:\n    enabled: true\n    max_roots_per_second: 0\n",
/// )
/// .unwrap_err();
/// assert!(error.to_string().contains("tracing.rate_limit.max_roots_per_second"));
/// ```
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitSettings {
    /// Limit the roots recorded per second. Default: `false`.
    pub enabled: bool,
    /// The most roots recorded per second, and the burst a quiet second allows, in
    /// `1..=10_000_000`. Default: `1000`.
    pub max_roots_per_second: u64,
}

impl RateLimitSettings {
    /// The highest `max_roots_per_second` accepted.
    pub const MAX_ROOTS_PER_SECOND: u64 = 10_000_000;

    /// The limit to apply: `Some(rate)` when enabled.
    pub fn limit(&self) -> Option<u64> {
        self.enabled.then_some(self.max_roots_per_second)
    }

    /// Checks the bounds (enabled or not, so that a bad value is found before it is
    /// switched on), naming the field under `section`.
    pub(super) fn validate(&self, section: &str) -> Result<(), SettingsError> {
        if !(1..=Self::MAX_ROOTS_PER_SECOND).contains(&self.max_roots_per_second) {
            return Err(SettingsError::new(
                format!("{section}.rate_limit.max_roots_per_second"),
                format!(
                    "{} is not in 1..={}",
                    self.max_roots_per_second,
                    Self::MAX_ROOTS_PER_SECOND
                ),
            ));
        }
        Ok(())
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            max_roots_per_second: 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::telemetry::settings::{RateLimitSettings, TelemetrySettings};

    fn error_of(yaml: &str) -> (String, String) {
        let error = TelemetrySettings::from_yaml(yaml).unwrap_err();
        (error.field().to_owned(), error.to_string())
    }

    #[test]
    fn disabled_by_default_in_both_sections() {
        let settings = TelemetrySettings::from_yaml("").unwrap();
        assert_eq!(settings.tracing.rate_limit, RateLimitSettings::default());
        assert!(!settings.tracing.rate_limit.enabled);
        assert_eq!(settings.tracing.rate_limit.limit(), None);
    }

    #[test]
    fn enabled_gives_the_limit() {
        let settings = TelemetrySettings::from_yaml(
            "tracing:\n  rate_limit:\n    enabled: true\n    max_roots_per_second: 10000000\n",
        )
        .unwrap();
        assert_eq!(settings.tracing.rate_limit.limit(), Some(10_000_000));
        let settings =
            TelemetrySettings::from_yaml("tracing:\n  rate_limit:\n    enabled: true\n").unwrap();
        assert_eq!(settings.tracing.rate_limit.limit(), Some(1000));
    }

    #[test]
    fn out_of_bounds_and_unknown_fields_are_named() {
        for rate in ["0", "10000001"] {
            let (field, message) = error_of(&format!(
                "tracing:\n  rate_limit:\n    max_roots_per_second: {rate}\n"
            ));
            assert_eq!(field, "tracing.rate_limit.max_roots_per_second");
            assert!(message.contains(rate), "{message}");
        }
        let (_, message) = error_of("tracing:\n  rate_limit:\n    max_roots: 5\n");
        assert!(message.contains("max_roots"), "{message}");
        let (_, message) = error_of("tracing:\n  rate_limit:\n    max_roots_per_second: -1\n");
        assert!(message.contains("rate_limit"), "{message}");
    }

    #[cfg(feature = "user-tracing")]
    #[test]
    fn the_user_section_has_the_same_block() {
        let settings = TelemetrySettings::from_yaml(
            "user_tracing:\n  socket_path: /s\n  rate_limit:\n    enabled: true\n    max_roots_per_second: 7\n",
        )
        .unwrap();
        assert_eq!(settings.user_tracing.unwrap().rate_limit.limit(), Some(7));
        let (field, _) = error_of(
            "user_tracing:\n  socket_path: /s\n  rate_limit:\n    max_roots_per_second: 0\n",
        );
        assert_eq!(field, "user_tracing.rate_limit.max_roots_per_second");
    }
}
