//! [`FaultyReceiver`]: an HTTP/1.1 receiver on a Unix socket, written byte by byte, that
//! misbehaves after the status line as no well-behaved server library would let it: it
//! promises a response body and then stalls, or closes the connection half-way through.
//!
//! It reads each request whole (headers and `Content-Length` body), decodes the body as an
//! `ExportTraceServiceRequest`, and counts the spans it was sent.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What the receiver does after `200 OK`.
#[derive(Clone, Copy, Debug)]
pub enum BodyFault {
    /// Sends a complete empty response, then closes the connection a moment later without
    /// having said so (`Connection: close` absent): a keep-alive connection that goes stale.
    CloseWhenIdle,
    /// Promises 100 body bytes, sends 5, then nothing, keeping the connection open for a minute.
    Stall,
    /// Promises 100 body bytes, sends 10, then closes the connection.
    CloseMidBody,
}

/// A receiver that answers every request with `200 OK` and then misbehaves.
pub struct FaultyReceiver {
    _dir: tempfile::TempDir,
    path: PathBuf,
    spans: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl FaultyReceiver {
    /// Listens on a fresh socket and answers every request with `fault`.
    pub fn start(fault: BodyFault) -> Self {
        let (dir, path) = crate::socket_path();
        let listener = UnixListener::bind(&path).expect("bind the receiver socket");
        let spans = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (counted_spans, counted_requests) = (Arc::clone(&spans), Arc::clone(&requests));
        let counted_connections = Arc::clone(&connections);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counted_connections.fetch_add(1, Ordering::SeqCst);
                let (spans, requests) = (Arc::clone(&counted_spans), Arc::clone(&counted_requests));
                std::thread::spawn(move || serve(stream, fault, &spans, &requests));
            }
        });
        Self {
            _dir: dir,
            path,
            spans,
            requests,
            connections,
        }
    }

    /// The socket to export to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Spans received in complete requests.
    pub fn spans(&self) -> usize {
        self.spans.load(Ordering::SeqCst)
    }

    /// Complete requests received.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Serves one request on `stream`; the fault ends the connection's useful life.
fn serve(stream: UnixStream, fault: BodyFault, spans: &AtomicUsize, requests: &AtomicUsize) {
    let mut reader = BufReader::new(stream);
    let mut content_length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; content_length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    if let Ok(request) = ExportTraceServiceRequest::decode(body.as_slice()) {
        let count: usize = request
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        spans.fetch_add(count, Ordering::SeqCst);
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let stream = reader.get_mut();
    if let BodyFault::CloseWhenIdle = fault {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        std::thread::sleep(Duration::from_millis(5));
        return;
    }
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n\
                content-length: 100\r\n\r\n";
    let _ = stream.write_all(head.as_bytes());
    match fault {
        BodyFault::CloseWhenIdle => unreachable!("answered above"),
        BodyFault::Stall => {
            let _ = stream.write_all(&[0; 5]);
            let _ = stream.flush();
            std::thread::sleep(Duration::from_secs(60));
        }
        BodyFault::CloseMidBody => {
            let _ = stream.write_all(&[0; 10]);
            let _ = stream.flush();
        }
    }
}
