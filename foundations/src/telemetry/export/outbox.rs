//! A worker's requests between encoding and sending: the [`Outbox`] holds what is encoded
//! and not yet sent, so that the next batch can be encoded while a request is in flight.
//!
//! This module owns that hand-over only; it neither encodes nor sends, and what it holds is
//! counted by the worker (taken when encoded, settled when sent or dropped).

use super::otlp::EncodedRequest;
use hyper::header::HeaderValue;
use std::collections::VecDeque;

/// What a worker does with the queue while a request is in flight.
#[derive(Clone, Copy)]
pub(super) enum Ahead {
    /// Take what is queued now (a flush, or draining at shutdown).
    Now,
    /// Wait for a full batch, or the flush interval, while the request is in flight.
    Wait,
}

/// Requests encoded and waiting their turn, oldest first, each with the routing header
/// value it goes out under. Holds at most one batch's requests beyond the one in flight.
pub(super) struct Outbox {
    requests: VecDeque<(EncodedRequest, Option<HeaderValue>)>,
}

/// The request an [`Outbox`] sends next.
pub(super) struct Outgoing {
    pub(super) request: EncodedRequest,
    pub(super) routing: Option<HeaderValue>,
}

impl Outbox {
    pub(super) fn new() -> Self {
        Self {
            requests: VecDeque::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    pub(super) fn push(&mut self, requests: Vec<EncodedRequest>, routing: Option<HeaderValue>) {
        self.requests.extend(
            requests
                .into_iter()
                .map(|request| (request, routing.clone())),
        );
    }

    pub(super) fn pop(&mut self) -> Option<Outgoing> {
        let (request, routing) = self.requests.pop_front()?;
        Some(Outgoing { request, routing })
    }

    /// Spans in the waiting requests.
    pub(super) fn spans(&self) -> usize {
        self.requests.iter().map(|(request, _)| request.spans).sum()
    }

    pub(super) fn clear(&mut self) {
        self.requests.clear();
    }
}
