//! The W3C `tracestate` header: [`TraceState`], an immutable, cheaply cloned list of vendor
//! members.
//!
//! Rules (W3C Trace Context, Level 2): a comma-separated list of at most
//! [`TraceState::MAX_MEMBERS`] `key=value` members with optional whitespace around each
//! member; empty members are skipped. Any invalid member or too many members invalidates
//! the whole header. A duplicated key does not: the first member of each key is kept and
//! later ones are dropped, so the other vendors' members always survive (the W3C test
//! suite, strict level, expects a tracestate with duplicated keys to be inherited).
//!
//! This module owns the header's grammar and its truncation rules only.

use super::ids::trim_ows;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Name of the `tracestate` header (lowercase, as it should be sent).
pub const TRACESTATE_HEADER: &str = "tracestate";

// ---------------------------------------------------------------------------
// tracestate
// ---------------------------------------------------------------------------

/// Why a `tracestate` value was rejected. Per the specification, the whole
/// `tracestate` is then discarded.
///
/// `index` fields are the zero-based position of the list member in the
/// (joined) header, counting empty members.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceStateError {
    /// More than [`TraceState::MAX_MEMBERS`] non-empty list members (duplicates included).
    TooManyMembers,
    /// A key does not match `[a-z0-9][a-z0-9_\-*/@]{0,255}`.
    InvalidKey {
        /// Position of the list member.
        index: usize,
    },
    /// A value is not 1 to 256 printable ASCII characters (except `,` and
    /// `=`) or ends with a space.
    InvalidValue {
        /// Position of the list member.
        index: usize,
    },
    /// A non-empty list member has no `=`.
    InvalidMember {
        /// Position of the list member.
        index: usize,
    },
}

impl fmt::Display for TraceStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceStateError::TooManyMembers => write!(
                f,
                "tracestate has more than {} list members",
                TraceState::MAX_MEMBERS
            ),
            TraceStateError::InvalidKey { index } => write!(
                f,
                "tracestate member #{index}: invalid key \
                 (must be 1-256 chars of [a-z0-9_-*/@], starting with [a-z0-9])"
            ),
            TraceStateError::InvalidValue { index } => write!(
                f,
                "tracestate member #{index}: invalid value (must be 1-256 printable \
                 ascii chars other than ',' and '=', not ending in a space)"
            ),
            TraceStateError::InvalidMember { index } => write!(
                f,
                "tracestate member #{index}: not a key=value pair (no '=')"
            ),
        }
    }
}

impl std::error::Error for TraceStateError {}

const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 256;
/// Members longer than this are the first to go when truncating.
const LONG_MEMBER_LEN: usize = 128;

/// Validates a `tracestate` key and returns it as `&str`.
fn validate_key(key: &[u8]) -> Option<&str> {
    let (&first, rest) = key.split_first()?;
    if key.len() > MAX_KEY_LEN || !matches!(first, b'a'..=b'z' | b'0'..=b'9') {
        return None;
    }
    if !rest
        .iter()
        .all(|&b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@'))
    {
        return None;
    }
    std::str::from_utf8(key).ok()
}

/// Validates a `tracestate` value and returns it as `&str`.
fn validate_value(value: &[u8]) -> Option<&str> {
    let (&last, _) = value.split_last()?;
    if value.len() > MAX_VALUE_LEN || last == b' ' {
        return None;
    }
    if !value
        .iter()
        .all(|&b| matches!(b, 0x20..=0x7E) && b != b',' && b != b'=')
    {
        return None;
    }
    std::str::from_utf8(value).ok()
}

/// Byte ranges of one member inside [`TraceStateInner::header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MemberSpan {
    start: usize,
    eq: usize,
    end: usize,
}

/// Shared, immutable body of a non-empty [`TraceState`]: the canonical header
/// text plus where each member lies in it.
#[derive(PartialEq, Eq)]
pub(super) struct TraceStateInner {
    header: String,
    members: Vec<MemberSpan>,
}

impl TraceStateInner {
    fn pair(&self, m: &MemberSpan) -> (&str, &str) {
        (&self.header[m.start..m.eq], &self.header[m.eq + 1..m.end])
    }
}

/// Accumulates validated members into canonical form.
struct Builder {
    header: String,
    members: Vec<MemberSpan>,
}

impl Builder {
    fn with_capacity(bytes: usize) -> Self {
        Builder {
            header: String::with_capacity(bytes),
            members: Vec::new(),
        }
    }

    fn contains_key(&self, key: &str) -> bool {
        self.members
            .iter()
            .any(|m| &self.header[m.start..m.eq] == key)
    }

    fn push(&mut self, key: &str, value: &str) {
        if !self.members.is_empty() {
            self.header.push(',');
        }
        let start = self.header.len();
        self.header.push_str(key);
        let eq = self.header.len();
        self.header.push('=');
        self.header.push_str(value);
        let end = self.header.len();
        self.members.push(MemberSpan { start, eq, end });
    }

    fn finish(self) -> TraceState {
        if self.members.is_empty() {
            TraceState::default()
        } else {
            TraceState {
                inner: Some(Arc::new(TraceStateInner {
                    header: self.header,
                    members: self.members,
                })),
            }
        }
    }
}

/// Incremental `tracestate` parser; list members may span several header
/// values, which behaves exactly like joining the values with `,`.
struct Parser {
    builder: Builder,
    index: usize,
    /// Non-empty members seen, duplicates included: what the member limit applies to.
    received: usize,
}

impl Parser {
    fn new(capacity: usize) -> Self {
        Parser {
            builder: Builder::with_capacity(capacity),
            index: 0,
            received: 0,
        }
    }

    fn feed(&mut self, value: &[u8]) -> Result<(), TraceStateError> {
        value
            .split(|&b| b == b',')
            .try_for_each(|member| self.member(member))
    }

    fn member(&mut self, raw: &[u8]) -> Result<(), TraceStateError> {
        let index = self.index;
        self.index += 1;
        let member = trim_ows(raw);
        if member.is_empty() {
            return Ok(());
        }
        if self.received >= TraceState::MAX_MEMBERS {
            return Err(TraceStateError::TooManyMembers);
        }
        self.received += 1;
        let Some(eq) = member.iter().position(|&b| b == b'=') else {
            return Err(TraceStateError::InvalidMember { index });
        };
        let (key, rest) = member.split_at(eq);
        let value = rest.get(1..).unwrap_or_default();
        let key = validate_key(key).ok_or(TraceStateError::InvalidKey { index })?;
        let value = validate_value(value).ok_or(TraceStateError::InvalidValue { index })?;
        // A later member with a key already seen is dropped: the first one wins.
        if !self.builder.contains_key(key) {
            self.builder.push(key, value);
        }
        Ok(())
    }
}

/// A validated W3C `tracestate`: an ordered list of up to
/// [`TraceState::MAX_MEMBERS`] vendor `key=value` members.
///
/// Immutable; cloning is O(1) (members are shared behind an [`Arc`]), and
/// updates return a new value. Equality compares the members in order.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TraceState {
    /// `None` exactly when there are no members.
    pub(super) inner: Option<Arc<TraceStateInner>>,
}

impl TraceState {
    /// Maximum number of list members.
    pub const MAX_MEMBERS: usize = 32;

    /// Parses one `tracestate` header value.
    ///
    /// Members are separated by `,`, with optional whitespace (space, tab)
    /// around each; empty members are skipped. Any invalid member or more than
    /// [`TraceState::MAX_MEMBERS`] non-empty members is an error, in which case
    /// the whole `tracestate` must be discarded. A duplicated key is not an
    /// error: the first member of each key is kept, later ones are dropped, and
    /// every other member is kept in order. Never panics.
    ///
    /// ```
    /// use foundations::telemetry::tracing::{TraceState, TraceStateError};
    ///
    /// let state = TraceState::parse(b"congo=t61rcWkgMzE, rojo=00f067aa0ba902b7").unwrap();
    /// assert_eq!(state.len(), 2);
    /// assert_eq!(state.get("rojo"), Some("00f067aa0ba902b7"));
    /// assert_eq!(state.to_header_value(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    ///
    /// // A duplicated key keeps its first member; the other vendors' members stay.
    /// let state = TraceState::parse(b"foo=1,bar=2,foo=3").unwrap();
    /// assert_eq!(state.to_header_value(), "foo=1,bar=2");
    ///
    /// assert_eq!(
    ///     TraceState::parse(b"foo=1,Bar=2"),
    ///     Err(TraceStateError::InvalidKey { index: 1 })
    /// );
    /// ```
    pub fn parse(value: &[u8]) -> Result<Self, TraceStateError> {
        let mut parser = Parser::new(value.len());
        parser.feed(value)?;
        Ok(parser.builder.finish())
    }

    /// Parses several `tracestate` header values of one request as if they
    /// were joined with `,` in order.
    pub fn parse_header_values<'a>(
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, TraceStateError> {
        let mut parser = Parser::new(0);
        for value in values {
            parser.feed(value)?;
        }
        Ok(parser.builder.finish())
    }

    /// Returns `true` if there are no members.
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// Returns the number of members.
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.members.len())
    }

    /// Returns the value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members().find(|&(k, _)| k == key).map(|(_, v)| v)
    }

    /// Iterates over the `(key, value)` members, leftmost (most recent) first.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .iter()
            .flat_map(|inner| inner.members.iter().map(|m| inner.pair(m)))
    }

    /// Returns a new state with `key` set to `value` and moved to the far
    /// left, as a vendor does when it updates its own entry. Other members
    /// keep their order; if that would exceed [`TraceState::MAX_MEMBERS`],
    /// the rightmost member is dropped.
    ///
    /// Errors (with `index: 0`) if the key or value is invalid.
    pub fn with_member(&self, key: &str, value: &str) -> Result<Self, TraceStateError> {
        let key = validate_key(key.as_bytes()).ok_or(TraceStateError::InvalidKey { index: 0 })?;
        let value =
            validate_value(value.as_bytes()).ok_or(TraceStateError::InvalidValue { index: 0 })?;
        let mut builder =
            Builder::with_capacity(self.header_str().len() + key.len() + value.len() + 2);
        builder.push(key, value);
        for (k, v) in self.members() {
            if builder.members.len() == Self::MAX_MEMBERS {
                break;
            }
            if k != key {
                builder.push(k, v);
            }
        }
        Ok(builder.finish())
    }

    /// Returns a new state without `key` (a clone if it is absent).
    #[must_use]
    pub fn without_member(&self, key: &str) -> Self {
        if self.get(key).is_none() {
            return self.clone();
        }
        let mut builder = Builder::with_capacity(self.header_str().len());
        for (k, v) in self.members().filter(|&(k, _)| k != key) {
            builder.push(k, v);
        }
        builder.finish()
    }

    /// Returns a state whose header value is at most `max_len` bytes, dropping
    /// whole members: first members longer than 128 characters (`key=value`),
    /// rightmost first, then members from the right. Members are only dropped
    /// while the header is still too long. Returns a clone if it already fits.
    #[must_use]
    pub fn truncated(&self, max_len: usize) -> Self {
        if self.header_str().len() <= max_len {
            return self.clone();
        }
        let members: Vec<(&str, &str)> = self.members().collect();
        let lens: Vec<usize> = members.iter().map(|(k, v)| k.len() + 1 + v.len()).collect();
        let mut keep = vec![true; members.len()];
        let mut sum: usize = lens.iter().sum();
        let mut count = members.len();
        let fits = |sum: usize, count: usize| count == 0 || sum + count - 1 <= max_len;
        while !fits(sum, count) {
            let kept = || (0..members.len()).rev().filter(|&i| keep[i]);
            let victim = kept()
                .find(|&i| lens[i] > LONG_MEMBER_LEN)
                .or_else(|| kept().next());
            let Some(victim) = victim else { break };
            keep[victim] = false;
            sum -= lens[victim];
            count -= 1;
        }
        let mut builder = Builder::with_capacity(max_len);
        for ((k, v), _) in members.iter().zip(&keep).filter(|(_, keep)| **keep) {
            builder.push(k, v);
        }
        builder.finish()
    }

    /// Formats the header value `k1=v1,k2=v2` (no spaces); empty when there
    /// are no members.
    pub fn to_header_value(&self) -> String {
        self.header_str().to_owned()
    }

    /// Borrows the formatted header value (see
    /// [`TraceState::to_header_value`]) without allocating.
    pub fn header_str(&self) -> &str {
        self.inner.as_ref().map_or("", |i| i.header.as_str())
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TraceState")
            .field(&self.header_str())
            .finish()
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header_str())
    }
}

impl FromStr for TraceState {
    type Err = TraceStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}
