//! An OTLP/HTTP receiver reduced to what an exporter needs: it reads each request's body
//! (by its `content-length`) and answers `200` with an empty message. For production-build
//! measurements (`tower_server` bench, `callgrind_tower_production` example), where the
//! exporter must send somewhere real.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

/// Starts the receiver and `telemetry::init` exporting every span to it over OTLP/HTTP,
/// sampling ratio 1.0, under `service_name`.
pub fn init_exporting_to_receiver(service_name: &str) -> foundations::telemetry::TelemetryDriver {
    use foundations::telemetry::{self, settings::TelemetrySettings};
    let address = start();
    let settings = TelemetrySettings::from_yaml(&format!(
        "tracing:\n  service_name: {service_name}\n  sampling:\n    ratio: 1.0\n  output:\n    \
         otlp_http:\n      endpoint: http://{address}\n"
    ))
    .expect("valid settings");
    telemetry::init(&settings).expect("telemetry starts")
}

/// Starts the receiver on a local port, a thread per connection.
pub fn start() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
    let address = listener.local_addr().expect("bound");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    address
}

fn serve(stream: TcpStream) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut writer = stream;
    let mut body = Vec::new();
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().ok()?;
                }
            }
        }
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
        writer
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n\
                  content-length: 0\r\n\r\n",
            )
            .ok()?;
    }
}
