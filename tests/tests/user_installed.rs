//! Both process-global harnesses installed at once: user spans reach only the user queue,
//! internal spans only the internal queue, from many threads at once.

use foundations::telemetry::testing::{HarnessOptions, install_tracing, install_user_tracing};
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::user_tracing;
use foundations_tests::Tenant;
use std::collections::HashSet;

#[test]
fn installed_pipelines_never_exchange_a_span() {
    let internal = install_tracing(HarnessOptions::default()).unwrap();
    let user = install_user_tracing(HarnessOptions::default()).unwrap();
    assert!(install_user_tracing(HarnessOptions::default()).is_err());

    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..50 {
                    let _user = user_tracing::start_user_trace("u_root", Tenant::new(t), None);
                    let _internal = tracing::start_trace("i_root", StartTraceOptions::default());
                    let _u = user_tracing::user_span("u_child");
                    let _i = tracing::span("i_child");
                    let _both = tracing::span(if i % 2 == 0 { "both_even" } else { "both_odd" })
                        .with_user_span();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }

    let mut internal_names = HashSet::new();
    let mut internal_count = 0;
    while let Some(span) = internal.try_recv() {
        assert!(span.routing().is_none());
        internal_names.insert(span.name().to_owned());
        internal_count += 1;
    }
    let mut user_names = HashSet::new();
    let mut user_count = 0;
    let mut routings_per_trace = std::collections::HashMap::new();
    while let Some(span) = user.try_recv() {
        let routing = span
            .routing()
            .expect("every user span carries routing")
            .encode();
        let previous = routings_per_trace.insert(span.trace_id(), routing.clone());
        assert!(
            previous.is_none_or(|p| p == routing),
            "one routing per trace"
        );
        user_names.insert(span.name().to_owned());
        user_count += 1;
    }
    assert_eq!(internal_count, 8 * 50 * 3);
    assert_eq!(user_count, 8 * 50 * 3);
    assert_eq!(
        internal_names,
        HashSet::from(["i_root", "i_child", "both_even", "both_odd"].map(String::from))
    );
    assert_eq!(
        user_names,
        HashSet::from(["u_root", "u_child", "both_even", "both_odd"].map(String::from))
    );
    assert_eq!(routings_per_trace.len(), 8 * 50);
}
