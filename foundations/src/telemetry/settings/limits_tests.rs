//! `span_limits` in both sections: defaults, spellings, bounds, and errors naming the field.

use super::SpanLimitsSettings;
use crate::telemetry::settings::TelemetrySettings;

fn section(name: &str, body: &str) -> String {
    let extra = if name == "user_tracing" {
        "  socket_path: /run/t.sock\n"
    } else {
        ""
    };
    format!("{name}:\n{extra}  span_limits:\n{body}")
}

fn limits_of(name: &str, settings: &TelemetrySettings) -> SpanLimitsSettings {
    match name {
        "tracing" => settings.tracing.span_limits.clone(),
        #[cfg(feature = "user-tracing")]
        "user_tracing" => settings.user_tracing.as_ref().unwrap().span_limits.clone(),
        _ => unreachable!(),
    }
}

fn sections() -> &'static [&'static str] {
    if cfg!(feature = "user-tracing") {
        &["tracing", "user_tracing"]
    } else {
        &["tracing"]
    }
}

#[test]
fn defaults_are_opentelemetry_s() {
    let defaults = TelemetrySettings::default().tracing.span_limits;
    assert_eq!(defaults.max_attributes, 128);
    assert_eq!(defaults.max_events, 128);
    assert_eq!(defaults.max_attributes_per_event, 128);
    assert_eq!(defaults.max_links, 128);
    assert_eq!(defaults.max_attribute_value_length, None);
}

#[test]
fn each_section_reads_its_own_limits_in_every_spelling() {
    for name in sections() {
        let yaml = section(
            name,
            "    max_attributes: 0\n    max_events: \"7\"\n    max_attributes_per_event: 0x10\n    \
             max_links: 1_000\n    max_attribute_value_length: null\n",
        );
        let settings = TelemetrySettings::from_yaml(&yaml).unwrap();
        let limits = limits_of(name, &settings);
        assert_eq!(limits.max_attributes, 0, "{name}");
        assert_eq!(limits.max_events, 7, "{name}");
        assert_eq!(limits.max_attributes_per_event, 16, "{name}");
        assert_eq!(limits.max_links, 1000, "{name}");
        assert_eq!(limits.max_attribute_value_length, None, "{name}");
    }
}

#[test]
fn errors_name_the_field() {
    let cases = [
        ("    max_attributes: 65537\n", "span_limits.max_attributes"),
        ("    max_events: 100000\n", "span_limits.max_events"),
        (
            "    max_attributes_per_event: 70000\n",
            "span_limits.max_attributes_per_event",
        ),
        ("    max_links: 99999999\n", "span_limits.max_links"),
        (
            "    max_attribute_value_length: 0\n",
            "span_limits.max_attribute_value_length",
        ),
        (
            "    max_attribute_value_length: 65537\n",
            "span_limits.max_attribute_value_length",
        ),
    ];
    for name in sections() {
        for (body, field) in cases {
            let error = TelemetrySettings::from_yaml(&section(name, body)).unwrap_err();
            assert_eq!(error.field(), format!("{name}.{field}"), "{body}");
        }
        // Unknown and mistyped fields are refused by the parser, naming them.
        let error = TelemetrySettings::from_yaml(&section(name, "    max_tags: 3\n")).unwrap_err();
        assert!(error.to_string().contains("max_tags"), "{error}");
        let error =
            TelemetrySettings::from_yaml(&section(name, "    max_links: -1\n")).unwrap_err();
        assert_eq!(error.field(), "<yaml>", "{error}");
    }
}
