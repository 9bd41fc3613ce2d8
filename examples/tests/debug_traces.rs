//! `GET /debug/traces` over a real socket while a request is stuck on its backend: the
//! stuck request's trace is listed with its route, tags and the span it waits in; once the
//! backend answers, it leaves the list. User spans (the request names a tenant) never show.

use bytes::Bytes;
use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing;
use foundations_examples::service::{self, Service};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

async fn get(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: String,
) -> (u16, Bytes) {
    let request = Request::get(url)
        .header("x-tenant", "acme")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_traces_shows_a_request_stuck_on_its_backend() {
    // Spans are recorded and discarded (output `none`); descendants tracked, as the
    // example's main does.
    let _driver = telemetry::init(&TelemetrySettings::default()).unwrap();
    tracing::set_live_descendants_enabled(true);

    // A backend that answers only when released.
    let release = Arc::new(Notify::new());
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let gate = Arc::clone(&release);
    tokio::spawn(service::serve(backend, move |_request| {
        let gate = Arc::clone(&gate);
        async move {
            gate.notified().await;
            Response::new(Full::new(Bytes::from_static(b"ok")))
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Service::new(backend_addr);
    tokio::spawn(async move { axum::serve(listener, app.router()).await });

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let stuck = tokio::spawn({
        let client = client.clone();
        async move { get(&client, format!("http://{addr}/users/42")).await }
    });

    // Poll until the stuck request shows, waiting in its backend call.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let trace = loop {
        let (status, body) = get(&client, format!("http://{addr}/debug/traces")).await;
        assert_eq!(status, 200);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let found = json["traces"].as_array().unwrap().iter().find(|trace| {
            trace["root"]["name"] == "GET /users/{id}"
                && trace["descendants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|span| span["name"] == "call_backend")
        });
        if let Some(found) = found {
            // The request's user trace (it names a tenant) has the same name: not listed.
            let same_name = json["traces"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|trace| trace["root"]["name"] == "GET /users/{id}")
                .count();
            assert_eq!(same_name, 1, "{json}");
            break found.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never listed: {json}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let root = &trace["root"];
    assert_eq!(root["tags"]["url.path"], "/users/42", "{trace}");
    assert_eq!(root["tags"]["span.kind"], "server", "{trace}");
    assert_eq!(root["tags"]["http.request.method"], "GET", "{trace}");
    assert_eq!(root["trace_id"].as_str().unwrap().len(), 32);
    assert!(root["elapsed_ms"].as_f64().unwrap() >= 0.0);
    let names: Vec<_> = trace["descendants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|span| span["name"].as_str().unwrap().to_owned())
        .collect();
    // The handler waits in its backend call, whose client request is open too.
    assert!(names.contains(&"GET".to_owned()), "{names:?}");
    for span in trace["descendants"].as_array().unwrap() {
        assert_eq!(span["trace_id"], root["trace_id"]);
    }
    // The debug request itself is served outside the tracing layer.
    let (_, body) = get(&client, format!("http://{addr}/debug/traces")).await;
    assert!(!String::from_utf8_lossy(&body).contains("/debug/traces"));

    release.notify_waiters();
    let (status, _) = stuck.await.unwrap();
    assert_eq!(status, 200);
    let trace_id = root["trace_id"].as_str().unwrap().to_owned();
    // The root finishes when its response body is complete: it leaves the list.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = get(&client, format!("http://{addr}/debug/traces")).await;
        if !String::from_utf8_lossy(&body).contains(&trace_id) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still listed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
