//! Settings tests: YAML forms, defaults, errors that name their field, and the
//! environment-variable rules of [`TracingSettings::resolve`](super::TracingSettings::resolve).

/// Parsing and validation of whole documents.
#[cfg(feature = "user-tracing")]
mod yaml {
    use crate::telemetry::settings::*;
    use std::time::Duration;

    fn error_field(yaml: &str) -> String {
        TelemetrySettings::from_yaml(yaml)
            .unwrap_err()
            .field()
            .to_owned()
    }

    #[test]
    fn defaults_need_only_the_socket_path() {
        let settings = TelemetrySettings::from_yaml("user_tracing:\n  socket_path: /s\n").unwrap();
        let user = settings.user_tracing.unwrap();
        assert_eq!(
            user,
            UserTracingSettings {
                socket_path: "/s".into(),
                ..Default::default()
            }
        );
        assert_eq!(user.export.request_timeout(), Duration::from_secs(10));
        assert_eq!(settings.tracing, TracingSettings::default());
        assert_eq!(
            TelemetrySettings::from_yaml("").unwrap(),
            TelemetrySettings::default()
        );
    }

    #[test]
    fn null_queue_size_is_unbounded() {
        let settings = TelemetrySettings::from_yaml(
            "user_tracing:\n  socket_path: /s\n  max_queue_size: null\n",
        )
        .unwrap();
        assert_eq!(settings.user_tracing.unwrap().export.max_queue_size, None);
    }

    #[test]
    fn invalid_values_name_their_field() {
        let base = "user_tracing:\n  socket_path: /s\n";
        for (extra, field) in [
            ("  num_tasks: 0\n", "user_tracing.num_tasks"),
            ("  max_batch_size: 0\n", "user_tracing.max_batch_size"),
            (
                "  request_timeout_ms: 0\n",
                "user_tracing.request_timeout_ms",
            ),
            ("  flush_interval_ms: 0\n", "user_tracing.flush_interval_ms"),
            (
                "  routing_header: \"bad header\"\n",
                "user_tracing.routing_header",
            ),
            ("  max_queue_size: 0\n", "user_tracing.max_queue_size"),
            (
                "  retry:\n    max_attempts: 0\n",
                "user_tracing.retry.max_attempts",
            ),
        ] {
            assert_eq!(error_field(&format!("{base}{extra}")), field, "{extra}");
        }
        assert_eq!(
            error_field("user_tracing:\n  socket_path: \"\"\n"),
            "user_tracing.socket_path"
        );
        assert_eq!(
            error_field("tracing:\n  sampling:\n    ratio: 2\n"),
            "tracing.sampling.ratio"
        );
        assert_eq!(
            error_field("tracing:\n  num_tasks: 0\n"),
            "tracing.num_tasks"
        );
        assert_eq!(
            error_field("tracing:\n  output:\n    otlp_http:\n      endpoint: ftp://x\n"),
            "tracing.output.otlp_http.endpoint"
        );
    }

    #[test]
    fn live_traces_defaults_and_unknown_keys() {
        let settings = TelemetrySettings::from_yaml("").unwrap();
        assert!(settings.tracing.live_traces.enabled);
        assert!(!settings.tracing.live_traces.descendants);
        let settings =
            TelemetrySettings::from_yaml("tracing:\n  live_traces:\n    descendants: true\n")
                .unwrap();
        assert!(settings.tracing.live_traces.enabled && settings.tracing.live_traces.descendants);
        assert!(
            TelemetrySettings::from_yaml("tracing:\n  live_traces:\n    descendents: true\n")
                .is_err(),
            "a misspelt key is an error"
        );
    }

    #[test]
    fn disabled_user_tracing_needs_no_socket() {
        assert!(TelemetrySettings::from_yaml("user_tracing:\n  enabled: false\n").is_ok());
    }

    #[test]
    fn unknown_fields_and_bad_yaml_are_errors_that_say_so() {
        let error = TelemetrySettings::from_yaml("user_tracing:\n  socket_path: /s\n  sockt: 1\n")
            .unwrap_err();
        assert!(error.message().contains("sockt"), "{error}");
        let error = TelemetrySettings::from_yaml("user_tracing: [unclosed").unwrap_err();
        assert_eq!(error.field(), "<yaml>");
        let error = TelemetrySettings::from_yaml("user_tracing:\n  num_tasks: many\n").unwrap_err();
        assert!(
            error.message().contains("many") || error.message().contains("integer"),
            "{error}"
        );
        let error =
            TelemetrySettings::from_yaml("user_tracing:\n  socket_path: /s\n  compression: zstd\n")
                .unwrap_err();
        assert!(error.message().contains("zstd"), "{error}");
    }
}

/// The environment-variable rules of [`TracingSettings::resolve`]: one test per row, each
/// with its own injected environment, so nothing touches (or races on) the process's.
mod resolve {
    use crate::telemetry::settings::*;
    use std::collections::BTreeMap;

    fn otlp(endpoint: Option<&str>) -> TracingSettings {
        TracingSettings {
            output: TracingOutput::OtlpHttp {
                endpoint: endpoint.map(str::to_owned),
                ca_bundle: None,
            },
            ..Default::default()
        }
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    const BOTH: &[(&str, &str)] = &[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces-env:4318/custom",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic-env:4318"),
    ];

    fn endpoint(
        settings: &TracingSettings,
        pairs: &'static [(&'static str, &'static str)],
    ) -> String {
        settings.resolve(env(pairs)).unwrap().endpoint.unwrap()
    }

    #[test]
    fn precedence_1_explicit_setting_wins_over_every_variable() {
        assert_eq!(
            endpoint(&otlp(Some("http://explicit:4318")), BOTH),
            "http://explicit:4318/v1/traces"
        );
    }

    #[test]
    fn precedence_2_traces_endpoint_variable_is_used_as_is() {
        assert_eq!(endpoint(&otlp(None), BOTH), "http://traces-env:4318/custom");
    }

    #[test]
    fn precedence_3_generic_endpoint_variable_gets_the_traces_path() {
        let only_generic: &[(&str, &str)] =
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic-env:4318/")];
        assert_eq!(
            endpoint(&otlp(None), only_generic),
            "http://generic-env:4318/v1/traces"
        );
    }

    #[test]
    fn precedence_4_default_is_localhost_4318() {
        assert_eq!(
            endpoint(&otlp(None), &[]),
            "http://localhost:4318/v1/traces"
        );
    }

    #[test]
    fn output_none_has_no_endpoint_whatever_the_environment() {
        assert_eq!(
            TracingSettings::default()
                .resolve(env(BOTH))
                .unwrap()
                .endpoint,
            None
        );
    }

    #[test]
    fn unix_and_https_endpoints_resolve() {
        assert_eq!(
            endpoint(&otlp(Some("unix:///run/otel.sock")), &[]),
            "unix:///run/otel.sock"
        );
        assert_eq!(
            endpoint(&otlp(Some("https://c:4318")), &[]),
            "https://c:4318/v1/traces"
        );
    }

    #[test]
    fn a_bad_variable_is_an_error_naming_it() {
        let bad: &[(&str, &str)] = &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318")];
        let error = otlp(None).resolve(env(bad)).unwrap_err();
        assert_eq!(error.field(), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        for (pairs, variable) in [
            (
                &[("OTEL_TRACES_SAMPLER", "sometimes")][..],
                "OTEL_TRACES_SAMPLER",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
                ][..],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "novalue")][..],
                "OTEL_RESOURCE_ATTRIBUTES",
            ),
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "k=%zz")][..],
                "OTEL_RESOURCE_ATTRIBUTES",
            ),
        ] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(pairs.to_vec().into_boxed_slice());
            let error = TracingSettings::default().resolve(env(pairs)).unwrap_err();
            assert_eq!(error.field(), variable, "{pairs:?}");
        }
    }

    #[test]
    fn service_name_and_resource_attributes_merge_settings_over_environment() {
        let vars: &[(&str, &str)] = &[
            ("OTEL_SERVICE_NAME", "from-env"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "team=edge,deployment.environment.name=staging,note=a%20b",
            ),
        ];
        let resolved = TracingSettings::default().resolve(env(vars)).unwrap();
        assert_eq!(resolved.service_name, "from-env");
        let mut settings = TracingSettings {
            service_name: Some("from-settings".into()),
            service_version: Some("1.2.3".into()),
            ..Default::default()
        };
        settings
            .resource_attributes
            .insert("deployment.environment.name".into(), "prod".into());
        let resolved = settings.resolve(env(vars)).unwrap();
        assert_eq!(resolved.service_name, "from-settings");
        let attributes: BTreeMap<_, _> = resolved.resource_attributes.iter().cloned().collect();
        assert_eq!(
            attributes["deployment.environment.name"], "prod",
            "settings win"
        );
        assert_eq!(attributes["team"], "edge");
        assert_eq!(attributes["note"], "a b");
        assert_eq!(attributes["service.version"], "1.2.3");
        assert_eq!(resolved.resource_attributes[0].0, "service.name");
    }

    #[test]
    fn sampler_variables_apply_only_when_settings_leave_sampling_unset() {
        let vars: &[(&str, &str)] = &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ];
        let resolved = TracingSettings::default().resolve(env(vars)).unwrap();
        assert_eq!(
            (resolved.sampling_ratio, resolved.parent_based),
            (0.25, true)
        );
        let always_off: &[(&str, &str)] = &[("OTEL_TRACES_SAMPLER", "always_off")];
        let resolved = TracingSettings::default().resolve(env(always_off)).unwrap();
        assert_eq!(
            (resolved.sampling_ratio, resolved.parent_based),
            (0.0, false)
        );
        let settings = TracingSettings {
            sampling: Some(SamplingSettings {
                ratio: 0.5,
                parent_based: false,
            }),
            ..Default::default()
        };
        let resolved = settings.resolve(env(vars)).unwrap();
        assert_eq!(
            (resolved.sampling_ratio, resolved.parent_based),
            (0.5, false)
        );
        let resolved = TracingSettings::default().resolve(env(&[])).unwrap();
        assert_eq!(
            (resolved.sampling_ratio, resolved.parent_based),
            (1.0, true)
        );
    }

    #[test]
    fn output_yaml_forms_parse() {
        let settings = TelemetrySettings::from_yaml("tracing:\n  output: none\n").unwrap();
        assert_eq!(settings.tracing.output, TracingOutput::None);
        let settings = TelemetrySettings::from_yaml(
            "tracing:\n  output:\n    otlp_http:\n      endpoint: http://c:4318\n      ca_bundle: /ca.pem\n",
        )
        .unwrap();
        assert_eq!(
            settings.tracing.output,
            TracingOutput::OtlpHttp {
                endpoint: Some("http://c:4318".into()),
                ca_bundle: Some("/ca.pem".into())
            }
        );
        let settings =
            TelemetrySettings::from_yaml("tracing:\n  output:\n    otlp_http: {}\n").unwrap();
        assert_eq!(
            settings.tracing.output,
            TracingOutput::OtlpHttp {
                endpoint: None,
                ca_bundle: None
            }
        );
        assert!(TelemetrySettings::from_yaml("tracing:\n  output: kafka\n").is_err());
    }
}

/// `ExportSettings` is flattened into both sections: serde buffers its keys before they
/// reach it, and the section collects the keys nobody took. These hold the YAML as it was.
mod flatten {
    use crate::telemetry::settings::*;
    use serde::Deserialize;

    /// The knobs as each section declared them before `ExportSettings`: plain fields that
    /// saphyr reads directly, without flatten's buffering. The reference for the spellings.
    #[derive(Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Native {
        max_queue_size: Option<usize>,
        num_tasks: usize,
        max_batch_size: usize,
        flush_interval_ms: u64,
        request_timeout_ms: u64,
        retry: NativeRetry,
        compression: Compression,
        max_request_bytes: usize,
    }

    #[derive(Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct NativeRetry {
        max_attempts: u32,
        initial_backoff_ms: u64,
        max_backoff_ms: u64,
        max_retry_after_ms: u64,
    }

    impl Default for Native {
        fn default() -> Self {
            let defaults = ExportSettings::default();
            Self {
                max_queue_size: defaults.max_queue_size,
                num_tasks: defaults.num_tasks,
                max_batch_size: defaults.max_batch_size,
                flush_interval_ms: defaults.flush_interval_ms,
                request_timeout_ms: defaults.request_timeout_ms,
                retry: NativeRetry::default(),
                compression: defaults.compression,
                max_request_bytes: defaults.max_request_bytes,
            }
        }
    }

    impl Default for NativeRetry {
        fn default() -> Self {
            let defaults = RetrySettings::default();
            Self {
                max_attempts: defaults.max_attempts,
                initial_backoff_ms: defaults.initial_backoff_ms,
                max_backoff_ms: defaults.max_backoff_ms,
                max_retry_after_ms: defaults.max_retry_after_ms,
            }
        }
    }

    fn native(knobs: &str) -> Result<ExportSettings, String> {
        let native: Native = serde_saphyr::from_str(knobs).map_err(|error| error.to_string())?;
        Ok(ExportSettings {
            max_queue_size: native.max_queue_size,
            num_tasks: native.num_tasks,
            max_batch_size: native.max_batch_size,
            flush_interval_ms: native.flush_interval_ms,
            request_timeout_ms: native.request_timeout_ms,
            retry: RetrySettings {
                max_attempts: native.retry.max_attempts,
                initial_backoff_ms: native.retry.initial_backoff_ms,
                max_backoff_ms: native.retry.max_backoff_ms,
                max_retry_after_ms: native.retry.max_retry_after_ms,
            },
            compression: native.compression,
            max_request_bytes: native.max_request_bytes,
        })
    }

    fn in_section(section: &str, knobs: &str) -> Result<TelemetrySettings, SettingsError> {
        let indented: String = knobs.lines().map(|line| format!("  {line}\n")).collect();
        let extra = if section == "user_tracing" {
            "  socket_path: /s\n"
        } else {
            ""
        };
        TelemetrySettings::from_yaml(&format!("{section}:\n{extra}{indented}"))
    }

    /// Every spelling parses flattened to what it parsed to natively, or fails in both.
    #[test]
    fn knobs_parse_flattened_as_they_do_directly() {
        let mut sections = vec!["tracing"];
        if cfg!(feature = "user-tracing") {
            sections.push("user_tracing");
        }
        for knobs in [
            "max_batch_size: 512",
            "max_batch_size: 7\nnum_tasks: 3\nflush_interval_ms: 50\nrequest_timeout_ms: 1",
            "max_queue_size: null",
            "max_queue_size: ~",
            "max_queue_size: 1000",
            "max_request_bytes: 1048576",
            "max_request_bytes: 18446744073709551615",
            "max_batch_size: 0x10",
            "max_batch_size: 1_000",
            "max_batch_size: \"512\"",
            "max_batch_size: '64'",
            "compression: none",
            "compression: gzip",
            "compression: \"gzip\"",
            "retry:\n  max_attempts: 2\n  max_backoff_ms: 100",
            "retry: {}",
            "retry:\n  max_attempts: \"3\"",
            "retry:\n  max_attempts: 4294967296",
            "max_queue_size: \"1200\"",
            "max_queue_size: \"null\"",
            "max_queue_size:",
            "max_batch_size: -1",
            "max_batch_size: 1.5",
            "max_batch_size: \"\"",
            "max_batch_size: true",
            "max_batch_size: [1]",
            "compression: zstd",
        ] {
            let direct = native(knobs);
            for section in &sections {
                let flattened = in_section(section, knobs);
                #[cfg(feature = "user-tracing")]
                let flattened = flattened.map(|settings| match *section {
                    "user_tracing" => settings.user_tracing.unwrap().export,
                    _ => settings.tracing.export,
                });
                #[cfg(not(feature = "user-tracing"))]
                let flattened = flattened.map(|settings| settings.tracing.export);
                match (&direct, flattened) {
                    (Ok(direct), Ok(flattened)) => {
                        assert_eq!(*direct, flattened, "{section}: {knobs}")
                    }
                    (Err(_), Err(_)) => {}
                    // Parsed alike, and refused by the bounds that validation adds.
                    (Ok(direct), Err(error)) if direct.validate(section).is_err() => {
                        assert_eq!(direct.validate(section).unwrap_err(), error);
                    }
                    (direct, flattened) => {
                        panic!("{section}: {knobs}: direct {direct:?}, flattened {flattened:?}")
                    }
                }
            }
        }
    }

    #[test]
    fn values_reach_their_fields() {
        let export = in_section(
            "tracing",
            "max_batch_size: 512\nmax_queue_size: null\nnum_tasks: 2\ncompression: gzip\nretry:\n  max_attempts: 9",
        )
        .unwrap()
        .tracing
        .export;
        assert_eq!(export.max_batch_size, 512);
        assert_eq!(export.max_queue_size, None);
        assert_eq!(export.num_tasks, 2);
        assert_eq!(export.compression, Compression::Gzip);
        assert_eq!(export.retry.max_attempts, 9);
        assert_eq!(export.flush_interval_ms, 200, "default");
    }

    #[test]
    fn unknown_keys_are_errors_naming_section_and_key() {
        for section in ["tracing", "user_tracing"] {
            if section == "user_tracing" && !cfg!(feature = "user-tracing") {
                continue;
            }
            // An unknown key is reported before an invalid value, as a parse error was.
            let error = in_section(section, "max_batch_sise: 5\nnum_tasks: 0").unwrap_err();
            assert_eq!(error.field(), format!("{section}.max_batch_sise"));
            assert!(error.message().contains("max_batch_sise"), "{error}");
            assert!(error.to_string().contains("max_batch_sise"), "{error}");
            // Within `retry` (not flattened) serde still rejects unknown fields itself.
            let error = in_section(section, "retry:\n  max_attempt: 5").unwrap_err();
            assert!(error.message().contains("max_attempt"), "{error}");
            // Wrong types in flattened knobs still say what is wrong.
            let error = in_section(section, "num_tasks: many").unwrap_err();
            assert!(error.message().contains("many"), "{error}");
        }
        let error =
            TelemetrySettings::from_yaml("tracing:\n  enabled: true\n  sockt: 1\n").unwrap_err();
        assert_eq!(error.field(), "tracing.sockt");
        // Top level keeps serde's own check.
        assert!(TelemetrySettings::from_yaml("tracingg: {}\n").is_err());
    }

    #[test]
    #[cfg(feature = "user-tracing")]
    fn disabled_user_tracing_still_rejects_unknown_keys() {
        let error = TelemetrySettings::from_yaml("user_tracing:\n  enabled: false\n  sockt: 1\n")
            .unwrap_err();
        assert_eq!(error.field(), "user_tracing.sockt");
    }
}
