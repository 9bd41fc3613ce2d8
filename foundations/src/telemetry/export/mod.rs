//! Export: delivers the finished spans of a pipeline's queue as OTLP/HTTP requests
//! (`POST /v1/traces`) or OTLP/gRPC calls (`TraceService/Export`). Both pipelines use it: the
//! user pipeline over a Unix domain socket (HTTP), with routing; the internal pipeline to any
//! OTLP collector, over HTTP or gRPC, without.
//!
//! The data flow, per worker:
//!
//! 1. **batch** (`worker`): take up to `max_batch_size` finished spans from the queue, or
//!    whatever is there once the flush interval passes; with routing, group them by routing
//!    (`routing`), so a request never mixes two routings.
//! 2. **encode** (`otlp`): write each span's protobuf bytes and frame them into request
//!    bodies under `max_request_bytes`.
//! 3. **send** (`worker`, `transport`, `grpc`): gzip the body if configured; one request in
//!    flight per worker, over the worker's keep-alive connection (HTTP/1.1) or one multiplexed
//!    HTTP/2 connection (gRPC, the same encoded bytes in a gRPC frame); retryable failures are
//!    retried with backoff (`retry`). While a request is in flight, the worker takes and
//!    encodes its next batch into its `outbox`, so encoding overlaps the receiver's work.
//!
//! Each pipeline's workers run on a thread of their own (`threads`), so one pipeline's
//! encoding never delays the other's timers.
//!
//! Every span that enters the queue ends up in exactly one counter of [`ExporterStats`]
//! (`stats`): exported, or dropped for a named reason.
//!
//! Export reads finished span records (from the pipeline's queue) and settings only. It
//! never decides what is recorded or sampled, never touches the scope stacks, and never
//! changes a span; `init` wires it to the pipelines.

mod grpc;
mod grpc_call;
mod otlp;
mod outbox;
mod retry;
mod routing;
mod stats;
mod threads;
mod tls;
mod transport;
mod worker;

pub(crate) use otlp::OtlpEncoder;
pub use stats::ExporterStats;
pub(crate) use threads::{ExporterThread, Work};
pub(crate) use transport::Transport;
pub(crate) use worker::{Exporter, ExporterConfig, Phase};
