//! Per-thread hand-over of finished spans: each thread that finishes spans into a queue gets
//! a ring of its own for that queue, which it alone writes and the queue's consumers read.
//!
//! A push into a thread's own ring writes the record and publishes it with one release
//! store: no read-modify-write, and no cache line that another producer also writes. A
//! queue shared by every producer (as the span queue is underneath) costs each span an
//! atomic add and a push on lines that bounce between cores: that is what these rings take
//! off the hot path.
//!
//! A ring is reachable by the consumer from the moment it is created, so a span pushed into
//! it is never hidden: a thread that parks forever, or exits, leaves its spans to be drained
//! like any others (an exited thread's ring is dropped once it is empty). A full ring gives
//! the span back, and the queue takes it the shared way, which is what bounds it.
//!
//! This module owns the rings and their registration. It counts nothing: the queue derives
//! what it holds from what the rings hold.

use super::finished::FinishedSpan;
use parking_lot::Mutex;
use rtrb::{Consumer, Producer, RingBuffer};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Spans a thread's ring holds. A thread whose ring is full pushes the shared way until a
/// consumer drains it.
pub(super) const RING_CAPACITY: usize = 512;

/// Queues one thread keeps rings for; beyond it (rings of dropped queues are pruned first),
/// a thread pushes the shared way.
const RINGS_PER_THREAD: usize = 8;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's rings, by queue id.
    static PRODUCERS: RefCell<Vec<(u64, Producer<FinishedSpan>)>> = const { RefCell::new(Vec::new()) };
}

/// The consumer side of every thread's ring for one queue.
pub(super) struct Rings {
    id: u64,
    consumers: Mutex<Vec<Consumer<FinishedSpan>>>,
    /// How many more rings may be created: together they hold at most the queue's bound,
    /// so that a queue holds at most twice its bound (a queue smaller than one ring has
    /// none, and its bound is exact).
    rings_left: AtomicUsize,
}

impl Rings {
    /// Rings for a queue bounded to `max_len` spans (`None`: unbounded).
    pub(super) fn new(max_len: Option<usize>) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            consumers: Mutex::new(Vec::new()),
            rings_left: AtomicUsize::new(max_len.map_or(usize::MAX, |max| max / RING_CAPACITY)),
        }
    }

    /// Writes the record `make` builds straight into this thread's ring (creating the ring
    /// on first use) and returns how many spans the ring holds now. Gives `make` back,
    /// unrun, when the ring is full or this thread cannot have a ring (no ring left, too
    /// many queues, or the thread is exiting).
    ///
    /// The record is built in its slot: each move of a record is a copy of its size.
    #[inline]
    pub(super) fn push<F: FnOnce() -> FinishedSpan>(&self, make: F) -> Result<usize, F> {
        let mut make = Some(make);
        let pushed = PRODUCERS.try_with(|producers| {
            // Reentrancy cannot happen (building and pushing a record runs no application
            // code), but a failed borrow must still not lose the span.
            let mut producers = producers.try_borrow_mut().ok()?;
            let producer = match producers.iter_mut().position(|(id, _)| *id == self.id) {
                Some(at) => &mut producers[at].1,
                None => self.register(&mut producers)?,
            };
            let chunk = producer.write_chunk_uninit(1).ok()?;
            chunk.fill_from_iter(std::iter::once_with(make.take().expect("built once")));
            // Reads the consumer's position: a line that changes once per drain.
            Some(RING_CAPACITY - producer.slots())
        });
        match (pushed, make) {
            (Ok(Some(len)), _) => Ok(len),
            (_, Some(make)) => Err(make),
            (_, None) => unreachable!("a record built is pushed"),
        }
    }

    #[cold]
    fn register<'a>(
        &self,
        producers: &'a mut Vec<(u64, Producer<FinishedSpan>)>,
    ) -> Option<&'a mut Producer<FinishedSpan>> {
        if producers.len() >= RINGS_PER_THREAD {
            // Rings of queues that are gone.
            producers.retain(|(_, producer)| !producer.is_abandoned());
            if producers.len() >= RINGS_PER_THREAD {
                return None;
            }
        }
        self.rings_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(1)
            })
            .ok()?;
        let (producer, consumer) = RingBuffer::new(RING_CAPACITY);
        self.consumers.lock().push(consumer);
        producers.push((self.id, producer));
        producers.last_mut().map(|(_, producer)| producer)
    }

    /// Moves up to `limit` spans out of the rings into `buffer`. Returns how many.
    pub(super) fn pop_into(&self, buffer: &mut Vec<FinishedSpan>, limit: usize) -> usize {
        let mut popped = 0;
        let mut consumers = self.consumers.lock();
        consumers.retain_mut(|consumer| {
            // Abandoned first: once it is, nothing more arrives, so empty then means done.
            let abandoned = consumer.is_abandoned();
            while popped < limit {
                match consumer.pop() {
                    Ok(span) => buffer.push(span),
                    Err(_) => break,
                }
                popped += 1;
            }
            let done = abandoned && consumer.is_empty();
            if done {
                self.rings_left.fetch_add(1, Ordering::AcqRel);
            }
            !done
        });
        popped
    }

    /// Spans waiting in the rings.
    pub(super) fn len(&self) -> usize {
        self.consumers.lock().iter().map(Consumer::slots).sum()
    }

    /// Takes one span out of the rings.
    pub(super) fn pop(&self) -> Option<FinishedSpan> {
        let mut buffer = Vec::with_capacity(1);
        self.pop_into(&mut buffer, 1);
        buffer.pop()
    }
}
