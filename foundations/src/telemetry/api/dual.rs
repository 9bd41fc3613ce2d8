//! Where the two pipelines meet on one thread: a user span opened beside an internal one
//! ([`SpanScope::with_user_span`], [`dual_span`]), and a scope handed over to a
//! [`TelemetryContext`] with whatever user span it linked ([`SpanScope::into_context`]).
//!
//! This is the only API code that touches both pipelines' stacks. It moves spans between a
//! stack and a context; it never changes a span's routing or pipeline: a user span stays on
//! the user stack, under its own trace's routing.

use super::internal::SpanScope;
use crate::telemetry::TelemetryContext;
use crate::telemetry::core::entry_span::EntrySpan;
use crate::telemetry::core::pipeline::{Internal, ScopeId};
use crate::telemetry::core::stack;
#[cfg(feature = "user-tracing")]
use crate::telemetry::core::user_link;

#[cfg(feature = "user-tracing")]
use super::internal;
#[cfg(feature = "user-tracing")]
use crate::telemetry::core::pipeline::User;
#[cfg(feature = "user-tracing")]
use std::borrow::Cow;

impl SpanScope {
    /// Also opens a user span with this span's name, as a child of the current user span;
    /// both stay current until this scope is dropped (feature `user-tracing`).
    ///
    /// Without an active user trace this adds nothing: the user pipeline never starts a
    /// trace by itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use foundations::telemetry::tracing::{self, StartTraceOptions};
    /// use foundations::telemetry::user_tracing::{self, RoutingMetadata};
    ///
    /// # #[derive(Debug)] struct Zone;
    /// # impl RoutingMetadata for Zone {
    /// #     fn group_key(&self) -> String { "z".into() }
    /// #     fn encode(&self) -> String { "zone=1".into() }
    /// # }
    /// # let ctx = foundations::telemetry::TelemetryContext::test();
    /// # ctx.scope_and(|| {
    /// let _user_root = user_tracing::start_user_trace("request", Zone, None);
    /// let _root = tracing::start_trace("request", StartTraceOptions::default());
    /// {
    ///     let _both = tracing::span("parse").with_user_span();
    /// }
    /// # });
    /// assert_eq!(ctx.traces(Default::default())[0].children[0].name, "parse");
    /// assert_eq!(ctx.user_traces(Default::default())[0].children[0].name, "parse");
    /// ```
    #[cfg(feature = "user-tracing")]
    #[inline]
    pub fn with_user_span(self) -> Self {
        let Some(id) = self.scope.id() else {
            return self;
        };
        // Only an entry opened while a user trace was active holds a name; taking it also
        // makes a second `with_user_span` a no-op.
        let name = user_link::take_pending_user_name(id);
        let user_scope = name.and_then(stack::push_child_of_current::<User>);
        if let Some(user_scope) = user_scope {
            user_link::link_user_scope(id, user_scope);
        }
        self
    }

    /// Ends this scope and returns a [`TelemetryContext`] that carries its span, together
    /// with the rest of the current context (such as the current user span), to other
    /// tasks and threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use foundations::telemetry::tracing::{self, StartTraceOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let test = foundations::telemetry::TelemetryContext::test();
    /// # let _scope = test.scope();
    /// let root = tracing::start_trace("request", StartTraceOptions::default());
    /// let trace_id = tracing::trace_id();
    ///
    /// root.into_context()
    ///     .apply(async move {
    ///         tokio::task::yield_now().await;
    ///         assert_eq!(tracing::trace_id(), trace_id);
    ///     })
    ///     .await;
    /// # }
    /// ```
    pub fn into_context(mut self) -> TelemetryContext {
        let own = self.scope.take().and_then(remove_with_user_span);
        let mut ctx = TelemetryContext::current();
        if let Some(own) = own {
            if let Some(span) = own.span {
                ctx.set_span::<Internal>(Some(span.into_shared()));
            }
            #[cfg(feature = "user-tracing")]
            if let Some(user_span) = own.user_span {
                ctx.set_span::<User>(user_span.map(EntrySpan::into_shared));
            }
        }
        ctx
    }
}

/// Opens an internal span and a user span of the same name, both current until the
/// returned scope is dropped: `span(name).with_user_span()`.
#[cfg(feature = "user-tracing")]
pub fn dual_span(name: impl Into<Cow<'static, str>>) -> SpanScope {
    internal::span(name).with_user_span()
}

/// The spans a scope's entries held, taken off both stacks.
///
/// Fields drop in order: the user span (opened last) finishes before the internal one.
struct OwnSpans {
    #[cfg(feature = "user-tracing")]
    user_span: Option<Option<EntrySpan>>,
    span: Option<EntrySpan>,
}

/// Removes internal entry `id` and the user entry it links to (if any).
#[inline]
fn remove_with_user_span(id: ScopeId<Internal>) -> Option<OwnSpans> {
    let entry = stack::remove_entry(id)?;
    Some(OwnSpans {
        #[cfg(feature = "user-tracing")]
        user_span: entry.user_scope.map(stack::remove),
        span: entry.span,
    })
}
