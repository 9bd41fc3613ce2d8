use super::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
use std::io::Write;
use tonic_types::StatusExt;

fn body_bytes(frame: &Frame) -> Vec<u8> {
    let mut chain = frame.prefix.clone().chain(frame.message.clone());
    chain.copy_to_bytes(chain.remaining()).to_vec()
}

#[test]
fn a_frame_is_the_flag_the_big_endian_length_and_the_message() {
    let plain = Frame::new(Bytes::from_static(b"abc"), false).unwrap();
    assert_eq!(body_bytes(&plain), b"\x00\x00\x00\x00\x03abc");
    let long = Frame::new(Bytes::from(vec![7u8; 70_000]), true).unwrap();
    let bytes = body_bytes(&long);
    assert_eq!(&bytes[..5], &[1, 0, 1, 0x11, 0x70]);
    assert_eq!(bytes.len(), 70_005);
}

#[test]
fn grpc_timeout_has_at_most_eight_digits() {
    assert_eq!(grpc_timeout(Duration::from_secs(10)), "10000m");
    assert_eq!(grpc_timeout(Duration::ZERO), "1m");
    assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
    assert_eq!(grpc_timeout(Duration::MAX), "99999999S");
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_status_is_read_with_its_message_and_retry_info() {
    let sent = Status::with_error_details(
        Code::ResourceExhausted,
        "slow down",
        tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_millis(1500))),
    );
    let details = base64::engine::general_purpose::STANDARD.encode(sent.details());
    for details in [details.clone(), details.trim_end_matches('=').to_owned()] {
        let status = status_of(&headers(&[
            ("grpc-status", "8"),
            ("grpc-message", "slow%20down"),
            ("grpc-status-details-bin", &details),
        ]))
        .unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "slow down");
        let delay = status.get_details_retry_info().unwrap().retry_delay;
        assert_eq!(delay, Some(Duration::from_millis(1500)));
    }
    assert!(status_of(&headers(&[("content-type", "application/grpc")])).is_none());
}

#[test]
fn malformed_status_metadata_keeps_the_code_and_never_panics() {
    let status = status_of(&headers(&[
        ("grpc-status", "14"),
        ("grpc-message", "%FF%FE"),
        ("grpc-status-details-bin", "not base64!"),
    ]))
    .unwrap();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "");
    assert!(status.details().is_empty());
    let nonsense = status_of(&headers(&[("grpc-status", "banana")])).unwrap();
    assert_eq!(nonsense.code(), Code::Unknown);
}

#[test]
fn http_statuses_without_a_grpc_status_map_as_the_specification_says() {
    assert_eq!(
        code_of_http_status(StatusCode::SERVICE_UNAVAILABLE),
        Code::Unavailable
    );
    assert_eq!(
        code_of_http_status(StatusCode::TOO_MANY_REQUESTS),
        Code::Unavailable
    );
    assert_eq!(
        code_of_http_status(StatusCode::NOT_FOUND),
        Code::Unimplemented
    );
    assert_eq!(code_of_http_status(StatusCode::BAD_REQUEST), Code::Internal);
    assert_eq!(code_of_http_status(StatusCode::IM_A_TEAPOT), Code::Unknown);
}

fn partial(rejected: i64) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: rejected,
            error_message: "no".to_owned(),
        }),
    }
}

fn framed(flag: u8, message: &[u8]) -> Bytes {
    let mut data = vec![flag];
    data.extend_from_slice(&(message.len() as u32).to_be_bytes());
    data.extend_from_slice(message);
    Bytes::from(data)
}

#[test]
fn response_messages_decode_plain_or_gzipped() {
    let message = partial(3).encode_to_vec();
    assert_eq!(decode_message(framed(0, &message), false), partial(3));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&message).unwrap();
    let gzipped = gz.finish().unwrap();
    assert_eq!(decode_message(framed(1, &gzipped), true), partial(3));
}

#[test]
fn unreadable_response_messages_are_full_success() {
    let message = partial(3).encode_to_vec();
    let empty = ExportTraceServiceResponse::default();
    assert_eq!(decode_message(Bytes::new(), false), empty);
    // Truncated: the prefix promises more than came.
    let mut truncated = framed(0, &message).to_vec();
    truncated.pop();
    assert_eq!(decode_message(Bytes::from(truncated), false), empty);
    // Compressed in an encoding we did not offer, or not gzip at all.
    assert_eq!(decode_message(framed(1, &message), false), empty);
    assert_eq!(decode_message(framed(1, &message), true), empty);
    assert_eq!(decode_message(framed(0, b"\xff\xff\xff"), false), empty);
}

#[test]
fn a_unix_endpoint_is_called_with_an_http2_authority() {
    let endpoint = Endpoint::parse_grpc("unix:///tmp/otlp.sock").unwrap();
    let connection = GrpcConnection::new(&endpoint, None, true, Duration::from_secs(1)).unwrap();
    let request = connection.head(Duration::from_secs(2));
    assert_eq!(
        request.uri().to_string(),
        format!("http://localhost{EXPORT_PATH}")
    );
    assert_eq!(request.headers()["te"], "trailers");
    assert_eq!(request.headers()["content-type"], "application/grpc");
    assert_eq!(request.headers()["grpc-encoding"], "gzip");
    assert_eq!(request.headers()["grpc-timeout"], "2000m");

    let tcp = Endpoint::parse_grpc("http://127.0.0.1:4317").unwrap();
    let connection = GrpcConnection::new(&tcp, None, false, Duration::from_secs(1)).unwrap();
    let request = connection.head(Duration::from_secs(2));
    assert_eq!(
        request.uri().to_string(),
        format!("http://127.0.0.1:4317{EXPORT_PATH}")
    );
    assert!(request.headers().get("grpc-encoding").is_none());
}

#[tokio::test]
async fn a_receiver_that_is_not_there_is_a_connect_failure() {
    let dir = std::env::temp_dir().join(format!("foundations-grpc-none-{}", std::process::id()));
    let endpoint = Endpoint::parse_grpc(&format!("unix://{}", dir.display())).unwrap();
    let connection = GrpcConnection::new(&endpoint, None, false, Duration::from_secs(1)).unwrap();
    let frame = Frame::new(Bytes::from_static(b""), false).unwrap();
    let outcome = connection.call(&frame, Duration::from_secs(1)).await;
    assert!(matches!(outcome, Err(CallError::Connect(_))), "{outcome:?}");
}
