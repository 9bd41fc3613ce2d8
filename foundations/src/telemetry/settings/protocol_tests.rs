//! The OTLP/gRPC output's settings: its endpoint precedence, output `otlp` following the
//! protocol variables, and the errors that name their source.

use crate::telemetry::settings::*;

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

fn endpoint(settings: &TracingSettings, pairs: &'static [(&'static str, &'static str)]) -> String {
    settings.resolve(env(pairs)).unwrap().endpoint.unwrap()
}

fn otlp(endpoint: Option<&str>) -> TracingSettings {
    output(TracingOutput::OtlpHttp {
        endpoint: endpoint.map(str::to_owned),
        ca_bundle: None,
    })
}

#[test]
fn grpc_output_parses_from_yaml() {
    let settings = TelemetrySettings::from_yaml(
        "tracing:\n  compression: gzip\n  output:\n    otlp_grpc:\n      \
         endpoint: https://c:4317\n      ca_bundle: /ca.pem\n",
    )
    .unwrap();
    assert_eq!(
        settings.tracing.output,
        TracingOutput::OtlpGrpc {
            endpoint: Some("https://c:4317".into()),
            ca_bundle: Some("/ca.pem".into()),
        }
    );
    assert_eq!(settings.tracing.export.compression, Compression::Gzip);
    let error = TelemetrySettings::from_yaml(
        "tracing:\n  output:\n    otlp_grpc:\n      endpoint: ftp://c:4317\n",
    )
    .unwrap_err();
    assert_eq!(error.field(), "tracing.output.otlp_grpc.endpoint");
}

fn output(output: TracingOutput) -> TracingSettings {
    TracingSettings {
        output,
        ..Default::default()
    }
}

fn grpc(endpoint: Option<&str>) -> TracingSettings {
    output(TracingOutput::OtlpGrpc {
        endpoint: endpoint.map(str::to_owned),
        ca_bundle: None,
    })
}

#[test]
fn grpc_precedence_uses_every_source_as_is_and_defaults_to_4317() {
    let resolved = grpc(Some("http://explicit:4317"))
        .resolve(env(BOTH))
        .unwrap();
    assert_eq!(resolved.protocol, OtlpProtocol::Grpc);
    assert_eq!(resolved.endpoint.unwrap(), "http://explicit:4317/");
    let traces: &[(&str, &str)] = &[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://traces-env:4317",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic-env:4317"),
    ];
    assert_eq!(endpoint(&grpc(None), traces), "https://traces-env:4317/");
    let generic: &[(&str, &str)] = &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic-env:4317")];
    assert_eq!(endpoint(&grpc(None), generic), "http://generic-env:4317/");
    assert_eq!(endpoint(&grpc(None), &[]), "http://localhost:4317/");
    assert_eq!(
        endpoint(&grpc(Some("unix:///run/otel-grpc.sock")), &[]),
        "unix:///run/otel-grpc.sock"
    );
    // An HTTP-style path is refused, naming where it came from.
    let error = grpc(None).resolve(env(BOTH)).unwrap_err();
    assert_eq!(error.field(), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let error = grpc(Some("http://c:4317/v1/traces"))
        .validate()
        .unwrap_err();
    assert_eq!(error.field(), "tracing.output.otlp_grpc.endpoint");
}

#[test]
fn output_otlp_follows_the_protocol_variables() {
    let otlp_any = output(TracingOutput::Otlp {
        endpoint: None,
        ca_bundle: None,
    });
    let resolved = otlp_any.resolve(env(&[])).unwrap();
    assert_eq!(resolved.protocol, OtlpProtocol::HttpProtobuf, "the default");
    assert_eq!(
        resolved.endpoint.unwrap(),
        "http://localhost:4318/v1/traces"
    );
    for (pairs, protocol, expected) in [
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")][..],
            OtlpProtocol::Grpc,
            "http://localhost:4317/",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")][..],
            OtlpProtocol::Grpc,
            "http://localhost:4317/",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ][..],
            OtlpProtocol::HttpProtobuf,
            "http://localhost:4318/v1/traces",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ][..],
            OtlpProtocol::Grpc,
            "http://collector:4317/",
        ),
    ] {
        let pairs: &'static [(&'static str, &'static str)] =
            Box::leak(pairs.to_vec().into_boxed_slice());
        let resolved = otlp_any.resolve(env(pairs)).unwrap();
        assert_eq!(resolved.protocol, protocol, "{pairs:?}");
        assert_eq!(resolved.endpoint.unwrap(), expected, "{pairs:?}");
    }
    // The explicit outputs ignore the protocol variables.
    let grpc_env: &[(&str, &str)] = &[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")];
    let resolved = otlp(None).resolve(env(grpc_env)).unwrap();
    assert_eq!(resolved.protocol, OtlpProtocol::HttpProtobuf);
    for (pairs, variable) in [
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")][..],
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")][..],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    ] {
        let pairs: &'static [(&'static str, &'static str)] =
            Box::leak(pairs.to_vec().into_boxed_slice());
        assert_eq!(otlp_any.resolve(env(pairs)).unwrap_err().field(), variable);
    }
}
