//! Scopes held across `.await` by `!Send` futures that share a thread (`join!` on a
//! `current_thread` runtime, tasks of a `LocalSet`): each future's spans parent only to its
//! own, and a user span never inherits another request's routing.

use foundations::telemetry::tracing;
use foundations::telemetry::user_tracing;
use foundations::telemetry::{self, TelemetryContext, TestSpan};
use foundations_tests::Tenant;

/// A request that keeps user and internal scopes open across its awaits.
async fn request(tenant: &'static str) {
    let _root = user_tracing::start_user_trace("request", Tenant::new(tenant), None);
    let _internal_root = tracing::span(format!("{tenant}-internal-root"));
    for _ in 0..3 {
        let _step = user_tracing::user_span(format!("{tenant}-step"));
        let _both = tracing::span(format!("{tenant}-both")).with_user_span();
        tokio::task::yield_now().await;
        let _inner = user_tracing::user_span(format!("{tenant}-inner"));
        tokio::task::yield_now().await;
    }
}

/// Every span of each user trace belongs to that trace's tenant, under its routing; the
/// internal trees are as separate.
fn assert_isolated(test: &foundations::telemetry::TestTelemetryContext) {
    let user = test.user_traces(Default::default());
    assert_eq!(
        user.len(),
        2,
        "two user traces, nothing re-rooted: {user:#?}"
    );
    for root in &user {
        let tenant = root
            .routing
            .as_deref()
            .unwrap()
            .trim_start_matches("tenant=")
            .to_owned();
        for span in root.iter() {
            assert_eq!(
                span.routing.as_deref(),
                Some(format!("tenant={tenant}").as_str())
            );
            if span.name != "request" {
                assert!(
                    span.name.starts_with(&tenant),
                    "{} under tenant {tenant}'s trace",
                    span.name
                );
            }
        }
        // root, 3 steps, each with a parallel span and an inner one.
        assert_eq!(root.iter().count(), 1 + 3 * 3, "{root:#?}");
    }
    let internal = test.traces(Default::default());
    assert_eq!(internal.len(), 2, "{internal:#?}");
    for root in &internal {
        let tenant = &root.name[..1];
        assert!(
            root.iter()
                .all(|span: &TestSpan| span.name.starts_with(tenant))
        );
        assert_eq!(root.iter().count(), 4);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn join_on_one_thread_keeps_each_futures_scopes_its_own() {
    let test = TelemetryContext::test();
    tokio::join!(test.apply(request("a")), test.apply(request("b")));
    assert_isolated(&test);
}

#[tokio::test(flavor = "current_thread")]
async fn local_set_tasks_keep_their_scopes_their_own() {
    let test = TelemetryContext::test();
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let _scope = test.scope();
            let a = telemetry::spawn_local(request("a"));
            let b = telemetry::spawn_local(request("b"));
            a.await.unwrap();
            b.await.unwrap();
        })
        .await;
    assert_isolated(&test);
}

#[tokio::test(flavor = "current_thread")]
async fn a_future_dropped_while_suspended_finishes_its_parked_spans() {
    let test = TelemetryContext::test();
    {
        let mut future = Box::pin(test.apply(request("a")));
        // One poll: the future parks its scopes and returns `Pending`.
        assert!(futures_poll_once(future.as_mut()).await.is_pending());
        let _other = test.apply(async { assert!(user_tracing::w3c_traceparent().is_none()) });
        test.apply(async { assert!(user_tracing::w3c_traceparent().is_none()) })
            .await;
    }
    // Dropped while suspended: its spans finished, once each, under its own routing.
    let user = test.user_traces(Default::default());
    assert_eq!(user.len(), 1);
    assert!(
        user[0]
            .iter()
            .all(|span| span.routing.as_deref() == Some("tenant=a"))
    );
    assert_eq!(user[0].iter().count(), 3, "{:#?}", user[0]);
}

async fn futures_poll_once<F: std::future::Future + Unpin>(future: F) -> std::task::Poll<()> {
    let mut future = future;
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::pin::Pin::new(&mut future).poll(cx).map(|_| ()))
    })
    .await
}
