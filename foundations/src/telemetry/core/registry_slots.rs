//! Where the live registry keeps its entries: per-thread tables of slots that a span writes
//! without a lock and a snapshot reads without stopping anyone.
//!
//! Each thread that registers a span is given a [`Table`] of its own; only that thread ever
//! takes a free slot from it, so taking one is a few plain loads and stores. A table's slots
//! never move (chunks are added, never reallocated) and tables are never freed, so a span
//! keeps a `&'static Slot` for as long as it lives, wherever it moves. When a thread exits,
//! its table goes to the next new thread, with any slots that spans which outlived the thread
//! still hold.
//!
//! A slot's fields are atomics behind a *sequence lock*: the one thread writing a slot at a
//! time (the registering thread while the slot is free, then the span's holder) makes the
//! sequence odd, writes, and makes it even again; a reader copies the fields and keeps the
//! copy only if the sequence did not move meanwhile. What does not fit in atomics (an owned
//! name, a root's copied tags, its tag source) sits in the slot's [`Extras`], behind a lock
//! that only those spans and snapshots take.
//!
//! Static names are stored as their index in the process-wide list of span names (`names`),
//! so that a slot holds its name in one atomic and reading it back needs no `unsafe`.
//!
//! This module owns the tables and the slots' protocol. It must not know what
//! a span or a trace is beyond the identity it is given; grouping and presenting entries is
//! the `registry` module's.

use super::clock::{AtomicTimestamp, Timestamp};
use super::names;
use crate::telemetry::propagation::ids::{SpanId, TraceId};
use cf_rustracing::tag::{Tag, TagValue};
use parking_lot::Mutex;
use std::borrow::Cow;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};
use std::sync::{OnceLock, Weak};

/// Slots in a table's first chunk; each next chunk doubles the table.
const FIRST_CHUNK: usize = 32;
/// Chunks per table: up to 32 × (2¹⁶ − 1) ≈ 2 M open spans per thread's table.
const CHUNKS: usize = 16;
/// Free slots looked at before a table grows (then the whole table is, once it cannot).
const PROBES: usize = 8;
/// A slot's name is in its [`Extras`], not the name list (`names`).
const OWNED_NAME: u32 = u32::MAX;
/// Times a reader retries a slot that is being written before it passes over it.
const READ_ATTEMPTS: usize = 64;

/// A shared span the registry can read a root's tags from at snapshot time, so that setting
/// a tag on it copies nothing (see `registry::set_tag_source`).
pub(crate) trait TagSource: Send + Sync {
    /// The span's tags as they are now.
    fn current_tags(&self) -> Vec<(String, TagValue)>;
}

/// A registered span's identity, as written into its slot.
pub(super) struct Identity<'a> {
    /// A borrowed (`'static`) name is indexed, an owned one copied.
    pub(super) name: &'a Cow<'static, str>,
    pub(super) trace_id: TraceId,
    pub(super) span_id: SpanId,
    pub(super) parent_span_id: Option<SpanId>,
    /// The span id of the root this span is listed under (its own, for a root).
    pub(super) root_span_id: SpanId,
    pub(super) start: Timestamp,
}

/// One registered span's entry.
pub(super) struct Slot {
    /// Even when stable, odd while written; bit 1 set while occupied.
    sequence: AtomicU32,
    /// Whether `extras` holds anything, so that leaving and reading skip its lock.
    has_extras: AtomicBool,
    trace_id_high: AtomicU64,
    trace_id_low: AtomicU64,
    span_id: AtomicU64,
    /// 0: none (a valid span id is never 0).
    parent_span_id: AtomicU64,
    root_span_id: AtomicU64,
    start: AtomicTimestamp,
    /// An index into the name list, or [`OWNED_NAME`].
    name: AtomicU32,
    extras: Mutex<Extras>,
}

/// What a slot cannot hold in atomics.
#[derive(Default)]
pub(super) struct Extras {
    /// The name, when it is not a `'static` one.
    pub(super) name: Option<String>,
    /// A root's tags, copied as they are set (until it has a `source`).
    pub(super) tags: Vec<Tag>,
    /// A shared root, whose tags a snapshot reads from the span itself.
    pub(super) source: Option<Weak<dyn TagSource>>,
}

/// A slot's content as a reader copied it.
pub(super) struct Seen {
    pub(super) trace_id: TraceId,
    pub(super) span_id: SpanId,
    pub(super) parent_span_id: Option<SpanId>,
    pub(super) root_span_id: SpanId,
    pub(super) start: Timestamp,
    /// The name, resolved by [`name_of`].
    name: u32,
    pub(super) owned_name: Option<String>,
    pub(super) tags: Vec<Tag>,
    pub(super) source: Option<Weak<dyn TagSource>>,
}

impl Slot {
    fn new() -> Self {
        Self {
            sequence: AtomicU32::new(0),
            has_extras: AtomicBool::new(false),
            trace_id_high: AtomicU64::new(0),
            trace_id_low: AtomicU64::new(0),
            span_id: AtomicU64::new(0),
            parent_span_id: AtomicU64::new(0),
            root_span_id: AtomicU64::new(0),
            start: AtomicTimestamp::new(),
            name: AtomicU32::new(OWNED_NAME),
            extras: Mutex::new(Extras::default()),
        }
    }

    /// Whether the slot may be taken. Acquire: the leaving span's last writes come first.
    fn is_free(&self) -> bool {
        self.sequence.load(Ordering::Acquire) & 3 == 0
    }

    /// Writes the slot as its one writer, leaving it `occupied` or free.
    #[inline]
    fn write<R>(&self, occupied: bool, write: impl FnOnce(&Self) -> R) -> R {
        let sequence = self.sequence.load(Ordering::Relaxed);
        self.sequence.store(sequence | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let result = write(self);
        // From stable `sequence`, the next even value with bit 1 as wanted.
        let was_occupied = sequence & 2 != 0;
        let step = if was_occupied == occupied { 4 } else { 2 };
        self.sequence
            .store(sequence.wrapping_add(step), Ordering::Release);
        result
    }

    /// Occupies a free slot with `span`, named by `name` (an index, or [`OWNED_NAME`]).
    #[inline]
    fn occupy(&self, span: &Identity<'_>, name: u32) {
        self.write(true, |slot| {
            let trace_id = span.trace_id.to_u128();
            slot.trace_id_high
                .store((trace_id >> 64) as u64, Ordering::Relaxed);
            slot.trace_id_low.store(trace_id as u64, Ordering::Relaxed);
            slot.span_id.store(span.span_id.to_u64(), Ordering::Relaxed);
            let parent = span.parent_span_id.map_or(0, SpanId::to_u64);
            slot.parent_span_id.store(parent, Ordering::Relaxed);
            slot.root_span_id
                .store(span.root_span_id.to_u64(), Ordering::Relaxed);
            slot.start.store(span.start, Ordering::Relaxed);
            slot.name.store(name, Ordering::Relaxed);
            if name == OWNED_NAME {
                slot.set_owned_name(span.name);
            }
        });
    }

    /// Out of line: most names are `'static` and indexed.
    #[cold]
    fn set_owned_name(&self, name: &str) {
        self.extras.lock().name = Some(name.to_owned());
        self.has_extras.store(true, Ordering::Relaxed);
    }

    /// Frees the slot. Returns the owned name and tag source it held, to be dropped by the
    /// caller outside the lock; the copied tags are cleared in place, so that the next
    /// root tagged in this slot reuses their room instead of allocating.
    #[inline]
    pub(super) fn vacate(&self) -> Option<Extras> {
        self.write(false, |slot| {
            // Cleared inside the write, so that a reader that saw the extras cleared also
            // sees the sequence move and discards its copy.
            slot.has_extras.load(Ordering::Relaxed).then(|| {
                slot.has_extras.store(false, Ordering::Relaxed);
                let mut extras = slot.extras.lock();
                extras.tags.clear();
                Extras {
                    name: extras.name.take(),
                    tags: Vec::new(),
                    source: extras.source.take(),
                }
            })
        })
    }

    /// Renames the occupied slot; returns the name it replaced, to drop outside the lock.
    #[cfg(feature = "tracing-bridge")]
    #[allow(clippy::ptr_arg)] // Whether the name is `'static` is in the `Cow`, not the `str`.
    pub(super) fn rename(&self, name: &Cow<'static, str>) -> Option<String> {
        let index = name_index(name);
        self.write(true, |slot| {
            slot.name
                .store(index.unwrap_or(OWNED_NAME), Ordering::Relaxed);
            let owned = index.is_none().then(|| name.to_string());
            if owned.is_some() || slot.has_extras.load(Ordering::Relaxed) {
                slot.has_extras.store(true, Ordering::Relaxed);
                return std::mem::replace(&mut slot.extras.lock().name, owned);
            }
            None
        })
    }

    /// Changes the occupied slot's extras; only the span's holder does.
    pub(super) fn with_extras<R>(&self, change: impl FnOnce(&mut Extras) -> R) -> R {
        let mut extras = self.extras.lock();
        self.has_extras.store(true, Ordering::Relaxed);
        change(&mut extras)
    }

    /// A consistent copy of the slot, if it is occupied.
    fn read(&self) -> Option<Seen> {
        for _ in 0..READ_ATTEMPTS {
            let before = self.sequence.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            if before & 2 == 0 {
                return None;
            }
            let high = self.trace_id_high.load(Ordering::Relaxed);
            let low = self.trace_id_low.load(Ordering::Relaxed);
            let parent = self.parent_span_id.load(Ordering::Relaxed);
            let mut seen = Seen {
                trace_id: TraceId::from_u128((u128::from(high) << 64) | u128::from(low)),
                span_id: SpanId::from_u64(self.span_id.load(Ordering::Relaxed)),
                parent_span_id: (parent != 0).then(|| SpanId::from_u64(parent)),
                root_span_id: SpanId::from_u64(self.root_span_id.load(Ordering::Relaxed)),
                start: self.start.load(Ordering::Relaxed),
                name: self.name.load(Ordering::Relaxed),
                owned_name: None,
                tags: Vec::new(),
                source: None,
            };
            if self.has_extras.load(Ordering::Relaxed) {
                let extras = self.extras.lock();
                seen.owned_name = extras.name.clone();
                seen.tags = extras.tags.clone();
                seen.source = extras.source.clone();
            }
            fence(Ordering::Acquire);
            if self.sequence.load(Ordering::Relaxed) == before {
                return Some(seen);
            }
        }
        None
    }
}

/// One thread's slots (or a thread's that exited, until a new thread takes it over).
struct Table {
    /// Chunk `k` holds `FIRST_CHUNK << k` slots; set once, never moved.
    chunks: [OnceLock<Box<[Slot]>>; CHUNKS],
    /// Slots in the chunks set so far. Written by the owning thread only.
    capacity: AtomicU32,
    /// Where the owning thread looks for a free slot next, as a chunk and an offset in it
    /// (so that the common case indexes one chunk). Written by the owning thread only.
    cursor_chunk: AtomicU32,
    cursor_offset: AtomicU32,
}

/// Every table ever made, for snapshots.
static TABLES: Mutex<Vec<&'static Table>> = Mutex::new(Vec::new());
/// Tables of exited threads, for new threads to take over.
static SPARE: Mutex<Vec<&'static Table>> = Mutex::new(Vec::new());

impl Table {
    /// The chunk and offset of the flat slot `index`.
    fn locate(index: usize) -> (usize, usize) {
        let chunk = (usize::BITS - 1 - (index / FIRST_CHUNK + 1).leading_zeros()) as usize;
        (chunk, index - FIRST_CHUNK * ((1 << chunk) - 1))
    }

    fn slot(&self, index: usize) -> &Slot {
        let (chunk, offset) = Self::locate(index);
        &self.chunks[chunk].get().expect("within capacity")[offset]
    }

    fn set_cursor(&self, index: usize) {
        let capacity = self.capacity.load(Ordering::Relaxed) as usize;
        let (chunk, offset) = Self::locate(if index >= capacity { 0 } else { index });
        self.cursor_chunk.store(chunk as u32, Ordering::Relaxed);
        self.cursor_offset.store(offset as u32, Ordering::Relaxed);
    }

    /// A free slot, growing the table if the next few are taken; `None` when it is full.
    #[inline]
    fn free_slot(&self) -> Option<&Slot> {
        // Spans mostly finish in the order they started: the slot at the cursor is free.
        let chunk = self.cursor_chunk.load(Ordering::Relaxed) as usize;
        let offset = self.cursor_offset.load(Ordering::Relaxed) as usize;
        if let Some(slots) = self.chunks.get(chunk).and_then(OnceLock::get) {
            if let Some(slot) = slots.get(offset).filter(|slot| slot.is_free()) {
                if offset + 1 < slots.len() {
                    self.cursor_offset
                        .store(offset as u32 + 1, Ordering::Relaxed);
                } else {
                    self.next_chunk(chunk);
                }
                return Some(slot);
            }
        }
        self.search()
    }

    /// Moves the cursor to the start of the chunk after `chunk`, or of the first.
    #[cold]
    fn next_chunk(&self, chunk: usize) {
        let next = chunk + 1;
        let next = match self.chunks.get(next).and_then(OnceLock::get) {
            Some(_) => next,
            None => 0,
        };
        self.cursor_chunk.store(next as u32, Ordering::Relaxed);
        self.cursor_offset.store(0, Ordering::Relaxed);
    }

    /// [`free_slot`](Self::free_slot) past a taken slot at the cursor.
    #[cold]
    fn search(&self) -> Option<&Slot> {
        let capacity = self.capacity.load(Ordering::Relaxed) as usize;
        let chunk = self.cursor_chunk.load(Ordering::Relaxed) as usize;
        let offset = self.cursor_offset.load(Ordering::Relaxed) as usize;
        let mut cursor = FIRST_CHUNK * ((1 << chunk) - 1) + offset;
        for probe in 0..capacity {
            if probe == PROBES {
                if let Some(slot) = self.grow(capacity) {
                    return Some(slot);
                }
            }
            let slot = self.slot(cursor.min(capacity - 1));
            cursor = if cursor + 1 >= capacity {
                0
            } else {
                cursor + 1
            };
            if slot.is_free() {
                self.set_cursor(cursor);
                return Some(slot);
            }
        }
        // An empty table, or a full one that could not grow at the probe limit.
        self.grow(capacity)
    }

    /// Adds the next chunk and returns its first slot; `None` when every chunk is in use.
    #[cold]
    fn grow(&self, capacity: usize) -> Option<&Slot> {
        let chunk = self.chunks.iter().position(|chunk| chunk.get().is_none())?;
        let size = FIRST_CHUNK << chunk;
        self.chunks[chunk]
            .set((0..size).map(|_| Slot::new()).collect())
            .ok()?;
        self.capacity
            .store((capacity + size) as u32, Ordering::Relaxed);
        self.set_cursor(capacity + 1);
        Some(self.slot(capacity))
    }

    fn occupied(&self) -> impl Iterator<Item = Seen> + '_ {
        self.chunks
            .iter()
            .map_while(OnceLock::get)
            .flat_map(|chunk| chunk.iter())
            .filter_map(Slot::read)
    }
}

/// The calling thread's table; returned to [`SPARE`] when the thread exits.
struct Owner(Cell<Option<&'static Table>>);

impl Owner {
    #[inline]
    fn table(&self) -> &'static Table {
        match self.0.get() {
            Some(table) => table,
            None => self.adopt(),
        }
    }

    /// Takes over an exited thread's table, or makes one.
    #[cold]
    fn adopt(&self) -> &'static Table {
        let table = SPARE.lock().pop().unwrap_or_else(|| {
            let table: &'static Table = Box::leak(Box::new(Table {
                chunks: [const { OnceLock::new() }; CHUNKS],
                capacity: AtomicU32::new(0),
                cursor_chunk: AtomicU32::new(0),
                cursor_offset: AtomicU32::new(0),
            }));
            TABLES.lock().push(table);
            table
        });
        self.0.set(Some(table));
        table
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(table) = self.0.take() {
            SPARE.lock().push(table);
        }
    }
}

thread_local! {
    static OWNER: Owner = const { Owner(Cell::new(None)) };
}

/// Takes a free slot of this thread's table and writes `span` into it. `None` when the table
/// is full or the thread is exiting: the span is then simply not listed.
#[inline]
pub(super) fn occupy(span: &Identity<'_>) -> Option<&'static Slot> {
    let name = name_index(span.name).unwrap_or(OWNED_NAME);
    let slot = OWNER.try_with(|owner| owner.table().free_slot()).ok()??;
    slot.occupy(span, name);
    Some(slot)
}

/// The index of a `'static` name in the name list; `None` for an owned name (or once the
/// list is full), which the slot then copies.
#[inline]
#[allow(clippy::ptr_arg)] // Whether the name is `'static` is in the `Cow`, not the `str`.
fn name_index(name: &Cow<'static, str>) -> Option<u32> {
    match name {
        Cow::Borrowed(name) => names::index_of(name),
        Cow::Owned(_) => None,
    }
}

/// Every occupied slot of every table, each copied consistently (not all at one instant).
pub(super) fn read_all() -> Vec<Seen> {
    let tables = TABLES.lock().clone();
    tables.iter().flat_map(|table| table.occupied()).collect()
}

/// `seen`'s name.
pub(super) fn name_of(seen: &Seen) -> String {
    match &seen.owned_name {
        Some(owned) => owned.clone(),
        None if seen.name != OWNED_NAME => names::name_at(seen.name).to_owned(),
        // Owned, and renamed meanwhile: the copy was taken as the name moved.
        None => String::new(),
    }
}

/// The address of the calling thread's table, for tests of its reuse.
#[cfg(all(test, feature = "testing"))]
pub(super) fn thread_table() -> usize {
    OWNER.with(|owner| std::ptr::from_ref(owner.table()) as usize)
}
