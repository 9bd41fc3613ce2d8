//! [`TracingBridge`]: the `tracing_subscriber::Layer` that records `tracing` spans and events
//! as internal-pipeline spans and log entries.
//!
//! A bridged span's handles live in the registry's extensions of its `tracing` span; while
//! the `tracing` span is entered on a thread, its internal span is current on that thread's
//! scope stack (an entry of this module's thread-local list ends it on exit). The registry
//! keeps an entered span open, so that entry never holds the last handle and ends in place.
//! A new span is built straight into its shared handle with its fields recorded into it, no
//! intermediate copies. This module decides parents and translates calls; recording is the
//! core's, and it never opens a user span unless the `tracing` span opts in (see the
//! `bridge` module docs).

use super::fields::{EventFields, SpanFields};
use crate::telemetry::core::current;
use crate::telemetry::core::entry_span::EntrySpan;
use crate::telemetry::core::entry_span::SpanHandle;
use crate::telemetry::core::harness::RootOptions;
use crate::telemetry::core::pipeline::Internal;
use crate::telemetry::core::scope::Scope;
use crate::telemetry::core::span::LiveSpan;
use crate::telemetry::core::stack;
use crate::telemetry::core::status::SpanStatus;
use cf_rustracing::log::LogField;
use cf_rustracing::tag::Tag;
use std::borrow::Cow;
use std::cell::RefCell;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

#[cfg(feature = "user-tracing")]
use crate::telemetry::core::pipeline::User;

/// A `tracing_subscriber::Layer` that records `tracing` spans as spans of the internal
/// pipeline, and `tracing` events as their log entries.
///
/// See the [module docs](super) for what is mapped and how parents are chosen. Install it
/// on a `tracing_subscriber::Registry`, with a filter to keep libraries' internals out:
///
/// ```
/// use foundations::telemetry::bridge::TracingBridge;
/// use tracing_subscriber::filter::{LevelFilter, Targets};
/// use tracing_subscriber::prelude::*;
///
/// let bridge = TracingBridge::new().with_filter(
///     Targets::new()
///         .with_default(LevelFilter::INFO)
///         .with_target("hyper", LevelFilter::OFF)
///         .with_target("h2", LevelFilter::OFF),
/// );
/// let subscriber = tracing_subscriber::registry().with(bridge);
/// # drop(subscriber);
/// // tracing::subscriber::set_global_default(subscriber)?;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingBridge {
    _private: (),
}

impl TracingBridge {
    /// The layer. It has no settings: the internal pipeline's own settings (sampling,
    /// export) apply to bridged spans, and filters come from `tracing_subscriber`.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The spans a `tracing` span was bridged to, kept in its registry extensions.
struct Bridged {
    internal: Option<SpanHandle>,
    /// The user span of a `tracing` span that opted in (`foundations.user = true`) inside
    /// an active user trace.
    #[cfg(feature = "user-tracing")]
    user: Option<SpanHandle>,
}

impl Bridged {
    fn handles(&self) -> impl Iterator<Item = &SpanHandle> {
        let user = {
            #[cfg(feature = "user-tracing")]
            {
                self.user.as_ref()
            }
            #[cfg(not(feature = "user-tracing"))]
            {
                None
            }
        };
        self.internal.iter().chain(user)
    }
}

/// What entering a bridged span pushed on this thread's stacks.
struct Entered {
    span: Id,
    _internal: Scope<Internal>,
    #[cfg(feature = "user-tracing")]
    _user: Option<Scope<User>>,
}

thread_local! {
    /// The bridged spans entered on this thread, innermost last.
    static ENTERED: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };
}

/// Where a new span hangs.
enum Parent {
    /// A bridged `tracing` span (an explicit parent).
    Bridged(SpanHandle),
    /// Whatever internal span is current on this thread (a contextual parent).
    Current,
    /// Nothing: a new root.
    Root,
}

/// Applies recorded fields to a shared span, under its lock.
fn apply_shared(handle: &SpanHandle, fields: SpanFields) {
    if let Some(span) = handle.as_recording() {
        span.with_span(|live| fields.apply(live));
    }
}

/// The internal span of a new `tracing` span under `parent` (a root, sampled by the
/// internal sampler, when there is none), `fill` recorded straight into it before it is
/// shared (at most one span is started). `fill` only moves collected fields in: no
/// application code, so the span may be built within the stack's borrow, with no handle
/// cloned for it.
fn start_under(
    parent: Parent,
    name: &'static str,
    mut fill: impl FnMut(&mut LiveSpan),
) -> Option<SpanHandle> {
    match parent {
        Parent::Bridged(handle) => Some(handle.child_shared(Cow::Borrowed(name), &mut fill)),
        Parent::Current => stack::inspect_current::<Internal, _>(|current| {
            current.map(|span| match span {
                EntrySpan::Shared(handle) => handle.child_shared(Cow::Borrowed(name), &mut fill),
                owned => owned.child(Cow::Borrowed(name)).into_shared_with(&mut fill),
            })
        }),
        Parent::Root => None,
    }
    .or_else(|| {
        let harness = current::root_harness::<Internal>()?;
        let name = Cow::Borrowed(name);
        let root = EntrySpan::start_tracked_root::<Internal>(harness, name, RootOptions::default());
        Some(root.into_shared_with(&mut fill))
    })
}

/// The internal span of a new `tracing` span under `parent`, its fields collected first
/// (their `Debug` impls are application code: no stack is borrowed while they run), then
/// moved in as one batch; the common case, when no user span may open beside it.
fn start_internal(parent: Parent, attrs: &Attributes<'_>) -> Option<SpanHandle> {
    // Collected in place (`SpanFields::of` would return them by copy).
    let mut fields = SpanFields::default();
    attrs.record(&mut fields);
    fields.push_status();
    start_under(parent, attrs.metadata().name(), |live| {
        fields.apply_first(live)
    })
}

/// As [`start_internal`], when a user trace is active: the fields are collected once, for
/// the internal span and for a user span if the `tracing` span opted in.
#[cfg(feature = "user-tracing")]
fn start_internal_and_user(
    parent: Parent,
    attrs: &Attributes<'_>,
) -> (Option<SpanHandle>, Option<SpanHandle>) {
    let mut fields = SpanFields::of(|fields| attrs.record(fields));
    let user_fields = fields.user.then(|| fields.copy());
    let internal = start_under(parent, attrs.metadata().name(), |live| {
        fields.apply_first(live)
    });
    let user = user_fields.and_then(|fields| start_user(attrs.metadata().name(), fields));
    (internal, user)
}

/// Opens the user span of an opted-in `tracing` span, under the current user span.
#[cfg(feature = "user-tracing")]
fn start_user(name: &'static str, fields: SpanFields) -> Option<SpanHandle> {
    let name = Cow::Borrowed(name);
    let user = stack::inspect_current::<User, _>(|current| current.map(|s| s.child(name)))?;
    Some(user.into_shared_with(|live| {
        let mut fields = fields;
        fields.apply_first(live)
    }))
}

impl<S> Layer<S> for TracingBridge
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = if let Some(parent) = attrs.parent() {
            let bridged = ctx.span(parent).and_then(|span| {
                let extensions = span.extensions();
                extensions.get::<Bridged>()?.internal.clone()
            });
            // A parent that was filtered out (or recorded nothing) leaves the choice to
            // what is current.
            bridged.map_or(Parent::Current, Parent::Bridged)
        } else if attrs.is_root() {
            Parent::Root
        } else {
            Parent::Current
        };
        #[cfg(feature = "user-tracing")]
        let (internal, user) = if current::user_trace_active() {
            start_internal_and_user(parent, attrs)
        } else {
            (start_internal(parent, attrs), None)
        };
        #[cfg(not(feature = "user-tracing"))]
        let internal = start_internal(parent, attrs);
        let bridged = Bridged {
            internal,
            #[cfg(feature = "user-tracing")]
            user,
        };
        if bridged.handles().next().is_none() {
            // Tracing off: nothing to keep.
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(bridged);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let extensions = span.extensions();
        let Some(bridged) = extensions.get::<Bridged>() else {
            return;
        };
        if !bridged.handles().any(|h| h.as_recording().is_some()) {
            return;
        }
        let fields = SpanFields::of(|fields| values.record(fields));
        #[cfg(feature = "user-tracing")]
        if let Some(user) = &bridged.user {
            apply_shared(user, fields.copy());
        }
        if let Some(internal) = &bridged.internal {
            apply_shared(internal, fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let (internal, user) = if let Some(parent) = event.parent() {
            let Some(span) = ctx.span(parent) else { return };
            let extensions = span.extensions();
            let Some(bridged) = extensions.get::<Bridged>() else {
                return;
            };
            (Target::Handle(bridged.internal.clone()), user_of(bridged))
        } else if event.is_root() {
            return;
        } else {
            // The internal span current here (a bridged span entered, or a foundations
            // span opened inside it); the user span only of an opted-in `tracing` span.
            let user = ctx.lookup_current().and_then(|span| {
                let extensions = span.extensions();
                extensions.get::<Bridged>().and_then(user_of)
            });
            (Target::Current, user)
        };
        let internal_recording = match &internal {
            Target::Handle(handle) => handle.as_ref().is_some_and(|h| h.as_recording().is_some()),
            Target::Current => stack::inspect_current::<Internal, _>(|span| {
                span.is_some_and(EntrySpan::is_recording)
            }),
        };
        if !internal_recording && user.is_none() {
            return;
        }
        let record = EventRecord::of(event);
        if internal_recording {
            match internal {
                Target::Handle(Some(handle)) => record.write_shared(&handle),
                Target::Handle(None) => {}
                Target::Current => stack::with_current::<Internal>(|span| record.write(span)),
            }
        }
        if let Some(user) = user {
            record.write_shared(&user);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let (internal, user) = {
            let extensions = span.extensions();
            let Some(bridged) = extensions.get::<Bridged>() else {
                return;
            };
            (bridged.internal.clone(), user_of(bridged))
        };
        // A bridged span without an internal span (tracing off, an opted-in user span
        // alone) hides nothing: the internal stack is left as it is.
        let internal = match internal {
            // The registry keeps the `tracing` span, and so our handle in its data, open
            // while it is entered: the entry ends in place.
            Some(handle) => Scope::of(stack::push_outlived::<Internal>(|slot| {
                *slot = Some(EntrySpan::Shared(handle));
            })),
            None => Scope::inert(),
        };
        #[cfg(feature = "user-tracing")]
        let user = user.map(|handle| {
            Scope::of(stack::push_outlived::<User>(|slot| {
                *slot = Some(EntrySpan::Shared(handle));
            }))
        });
        #[cfg(not(feature = "user-tracing"))]
        let _: Option<SpanHandle> = user;
        let entered = Entered {
            span: id.clone(),
            _internal: internal,
            #[cfg(feature = "user-tracing")]
            _user: user,
        };
        // Ignored when the thread is exiting: nothing is current there any more.
        let _ = ENTERED.try_with(|entered_spans| entered_spans.borrow_mut().push(entered));
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let exited = ENTERED
            .try_with(|entered| {
                let mut entered = entered.borrow_mut();
                // Spans are usually exited innermost first.
                if entered.last().is_some_and(|e| e.span == *id) {
                    return entered.pop();
                }
                let index = entered.iter().rposition(|e| e.span == *id)?;
                Some(entered.remove(index))
            })
            .ok()
            .flatten();
        // Ended outside the borrow: ending a scope may finish a span, which may run a
        // finish callback that opens (bridged) spans itself.
        drop(exited);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let bridged = ctx
            .span(&id)
            .and_then(|span| span.extensions_mut().remove::<Bridged>());
        // Finished outside the registry's lock, for the same reason as in `on_exit`.
        drop(bridged);
    }
}

/// Where an event's log entry goes.
enum Target {
    /// The span of an explicit `tracing` parent.
    Handle(Option<SpanHandle>),
    /// The internal span current on this thread.
    Current,
}

fn user_of(bridged: &Bridged) -> Option<SpanHandle> {
    #[cfg(feature = "user-tracing")]
    return bridged.user.clone();
    #[cfg(not(feature = "user-tracing"))]
    {
        let _ = bridged;
        None
    }
}

/// An event as a log entry, and the status it sets.
struct EventRecord {
    fields: Vec<LogField>,
    /// The error status of an ERROR event or one with an `error` field, as tags.
    status: Option<[Tag; 3]>,
}

impl EventRecord {
    fn of(event: &Event<'_>) -> Self {
        let metadata = event.metadata();
        let mut visited = EventFields::default();
        event.record(&mut visited);
        let message = visited.message.unwrap_or_default();
        let status = if let Some(error) = visited.error {
            Some(SpanStatus::error(error).into_tags())
        } else if *metadata.level() == Level::ERROR {
            Some(SpanStatus::error(message.clone()).into_tags())
        } else {
            None
        };
        let mut fields = Vec::with_capacity(4 + visited.fields.len());
        // `event` names the OTLP event; the message says it best, else the callsite's name.
        let event_name = if message.is_empty() {
            Cow::Borrowed(metadata.name())
        } else {
            Cow::Owned(message.clone())
        };
        fields.push(LogField::new("event", event_name));
        fields.push(LogField::new("level", metadata.level().as_str()));
        fields.push(LogField::new("target", metadata.target().to_owned()));
        fields.push(LogField::new("message", message));
        fields.extend(visited.fields);
        Self { fields, status }
    }

    fn write(&self, span: &mut EntrySpan) {
        span.log(self.fields.iter().cloned());
        if let Some(status) = &self.status {
            span.set_tags(status.iter().cloned());
        }
    }

    fn write_shared(&self, handle: &SpanHandle) {
        if let Some(span) = handle.as_recording() {
            span.with_span(|live| {
                live.log(self.fields.iter().cloned());
                if let Some(status) = &self.status {
                    live.set_tags(status.iter().cloned());
                }
            });
        }
    }
}
