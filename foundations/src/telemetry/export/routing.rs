//! Routing (user pipeline): a batch grouped by the routing header value each span's trace
//! encoded to when it started. A request never holds spans of two routings, whatever the
//! application's `RoutingMetadata` does: grouping compares the header values themselves, so
//! a `group_key()` shared by two customers cannot merge them.
//!
//! Spans without routing, and spans whose routing could not be encoded (its `encode()`
//! panicked, or gave no valid header value), are dropped here and counted, never sent. This
//! module reads finished records only; it neither encodes nor sends them.

use super::stats::{Counters, add};
use crate::telemetry::core::finished::FinishedSpan;
use crate::telemetry::core::routing::{Routing, RoutingFault};
use hyper::header::HeaderValue;
use std::collections::HashMap;
use std::sync::Arc;

/// Groups spans by their routing header value; drops (and counts) those that cannot be sent.
pub(super) fn group_by_routing<'a>(
    batch: &'a [FinishedSpan],
    counters: &Counters,
) -> Vec<(HeaderValue, Vec<&'a FinishedSpan>)> {
    let mut groups: Vec<(&'a str, Vec<&'a FinishedSpan>)> = Vec::new();
    let mut by_header: HashMap<&'a str, usize> = HashMap::new();
    let mut invalid = 0;
    // The group of the previous span's routing: the spans of a trace share one routing and
    // usually arrive together, so most spans need no hash of their header.
    let mut previous: Option<(&'a Arc<Routing>, usize)> = None;
    for span in batch {
        if let (Some((routing, group)), Some(own)) = (previous, span.resolved_routing())
            && Arc::ptr_eq(routing, own)
        {
            groups[group].1.push(span);
            continue;
        }
        match span.routing_header() {
            None => add(&counters.no_routing, 1),
            Some(Err(RoutingFault::Panicked)) => add(&counters.routing_panicked, 1),
            Some(Err(RoutingFault::InvalidHeader)) => invalid += 1,
            Some(Ok(header)) => {
                let index = *by_header.entry(header).or_insert_with(|| {
                    groups.push((header, Vec::new()));
                    groups.len() - 1
                });
                groups[index].1.push(span);
                previous = span.resolved_routing().map(|routing| (routing, index));
            }
        }
    }
    if invalid > 0 {
        add(&counters.invalid_routing, invalid);
        log::error!(
            "foundations user tracing: {invalid} spans dropped: their routing does not encode \
             to a valid header value"
        );
    }
    let mut sendable = Vec::with_capacity(groups.len());
    for (header, spans) in groups {
        // The core admits only what a header value may hold, so this always succeeds; a
        // failure is still counted rather than assumed away.
        match HeaderValue::from_str(header) {
            Ok(value) => sendable.push((value, spans)),
            Err(_) => add(&counters.invalid_routing, spans.len()),
        }
    }
    sendable
}
