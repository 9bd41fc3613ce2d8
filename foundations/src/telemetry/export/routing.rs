//! Routing (user pipeline): a batch grouped by `RoutingMetadata::group_key()`, each group
//! with the header value its `encode()` gives. A request never holds spans of two routings.
//!
//! Spans without routing, and groups whose encoded routing is not a valid header value, are
//! dropped here and counted (with one logged error per group), never sent. This module reads
//! finished records only; it neither encodes nor sends them.

use super::stats::{Counters, add};
use crate::telemetry::core::finished::FinishedSpan;
use cf_rustracing::span::RoutingMetadata;
use hyper::header::HeaderValue;
use std::collections::HashMap;

/// Groups spans by routing; drops (and counts) those that cannot be sent.
///
/// The spans of a trace share one routing object, so `group_key()` (which allocates) is
/// asked once per distinct object, not once per span.
pub(super) fn group_by_routing<'a>(
    batch: &'a [FinishedSpan],
    counters: &Counters,
) -> Vec<(HeaderValue, Vec<&'a FinishedSpan>)> {
    struct Group<'a> {
        key: String,
        header: Option<HeaderValue>,
        spans: Vec<&'a FinishedSpan>,
    }
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut by_object: HashMap<*const (), usize> = HashMap::new();
    for span in batch {
        let Some(routing) = span.routing() else {
            add(&counters.no_routing, 1);
            continue;
        };
        let object = routing as *const dyn RoutingMetadata as *const ();
        let index = *by_object.entry(object).or_insert_with(|| {
            let key = routing.group_key();
            *by_key.entry(key.clone()).or_insert_with(|| {
                groups.push(Group {
                    header: HeaderValue::from_str(&routing.encode()).ok(),
                    key,
                    spans: Vec::new(),
                });
                groups.len() - 1
            })
        });
        groups[index].spans.push(span);
    }
    let mut sendable = Vec::with_capacity(groups.len());
    for group in groups {
        match group.header {
            Some(header) => sendable.push((header, group.spans)),
            None => {
                add(&counters.invalid_routing, group.spans.len());
                log::error!(
                    "foundations user tracing: routing {:?} does not encode to a valid \
                     header value; dropped {} spans",
                    group.key,
                    group.spans.len()
                );
            }
        }
    }
    sendable
}
