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
//! like any others (an exited thread's ring is dropped once it is empty). A thread whose
//! ring is full goes on in a new one (the full one is dropped once drained), as long as the
//! queue's bound leaves room for rings; then the span is given back, and the queue takes
//! it the shared way. A backlog thus sits in rings, a record per slot and nothing more
//! (the shared queue adds a word per span).
//!
//! A thread's first ring is small ([`FIRST_RING`] spans); each one that fills is followed
//! by one twice its size, up to [`LARGEST_RING`]. A thread that finishes few spans keeps a
//! few KiB, and a busy one a ring in which spans can gather for longer than one batch:
//! waking a consumer costs its producer a system call, which a busy thread makes only
//! once its ring is half full (`queue`).
//!
//! This module owns the rings and their registration. It counts nothing: the queue derives
//! what it holds from what the rings hold.

use super::finished::FinishedSpan;
use parking_lot::Mutex;
use rtrb::{Consumer, Producer, RingBuffer};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Spans a thread's first ring holds.
const FIRST_RING: usize = 512;

/// Spans the largest ring holds: 480 KiB of records, touched only as they are written.
const LARGEST_RING: usize = 4096;

/// Queues one thread keeps rings for; beyond it (rings of dropped queues are pruned first),
/// a thread pushes the shared way.
const RINGS_PER_THREAD: usize = 8;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's rings, by queue id.
    static PRODUCERS: RefCell<Vec<(u64, Producer<FinishedSpan>)>> = const { RefCell::new(Vec::new()) };
}

/// What a push into a ring did.
pub(super) struct Pushed {
    /// Spans in the ring now.
    pub(super) len: usize,
    /// The thread's ring was full: a batch is ready, and the span went into a new ring.
    pub(super) filled: bool,
}

/// What a push into this thread's ring did with a record it built.
enum Attempt {
    Pushed(Pushed),
    Refused(FinishedSpan),
}

/// A span a ring did not take: the queue takes it the shared way.
pub(super) enum NotPushed<F> {
    /// Not built yet: `make` builds it.
    Unbuilt(F),
    /// Built, then refused: the thread's ring was full and no new one could be made.
    Built(FinishedSpan),
}

/// The consumer side of every thread's ring for one queue.
pub(super) struct Rings {
    id: u64,
    consumers: Mutex<Vec<Consumer<FinishedSpan>>>,
    /// How many more spans new rings may hold: together rings hold at most the queue's
    /// bound, so that a queue holds at most twice its bound (a queue smaller than a first
    /// ring has none, and its bound is exact).
    room_left: AtomicUsize,
}

impl Rings {
    /// Rings for a queue bounded to `max_len` spans (`None`: unbounded).
    pub(super) fn new(max_len: Option<usize>) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            consumers: Mutex::new(Vec::new()),
            room_left: AtomicUsize::new(max_len.unwrap_or(usize::MAX)),
        }
    }

    /// Pushes the record `make` builds into this thread's ring (creating the ring on first
    /// use, or a new one when it is full) and says how many spans the ring holds now. Gives
    /// `make` back, unrun, when this thread has no ring (none left to create, too many
    /// queues, or the thread is exiting), or the record, built, when its ring was full and no
    /// new one could be made.
    #[inline]
    pub(super) fn push<F: FnOnce() -> FinishedSpan>(
        &self,
        make: F,
    ) -> Result<Pushed, NotPushed<F>> {
        let mut make = Some(make);
        let attempt = PRODUCERS.try_with(|producers| {
            // Reentrancy cannot happen (building and pushing a record runs no application
            // code), but a failed borrow must still not lose the span.
            let mut producers = producers.try_borrow_mut().ok()?;
            let at = match producers.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => self.register(&mut producers)?,
            };
            let producer = &mut producers[at].1;
            // Built here and moved in: building it in its slot (`write_chunk_uninit`) would
            // save the move, but only while the compiler inlines rtrb's chunk filling into
            // this function, which it stops doing with unrelated changes (+70 instructions a
            // span when it does not).
            let record = make.take()?();
            // Pushed without asking first whether the ring is full: the push asks that itself.
            Some(match producer.push(record) {
                // Reads the consumer's position: a line that changes once per drain.
                Ok(()) => Attempt::Pushed(Pushed {
                    len: producer.buffer().capacity() - producer.slots(),
                    filled: false,
                }),
                Err(rtrb::PushError::Full(record)) => self.push_into_new_ring(producer, record),
            })
        });
        match attempt {
            Ok(Some(Attempt::Pushed(pushed))) => Ok(pushed),
            Ok(Some(Attempt::Refused(record))) => Err(NotPushed::Built(record)),
            // Not built: no ring (or the thread is exiting).
            _ => match make {
                Some(make) => Err(NotPushed::Unbuilt(make)),
                None => unreachable!("a record built is pushed or refused"),
            },
        }
    }

    /// This thread's ring `full` is full: the full ring stays with the consumer, which drops
    /// it once drained (its producer is gone), and this thread goes on in a new one: twice
    /// its size up to [`LARGEST_RING`], or a first ring's size when the queue's bound leaves
    /// room for no more. Spans stay in their thread's order: the consumer
    /// drains rings in the order they were made.
    #[cold]
    #[inline(never)]
    fn push_into_new_ring(
        &self,
        full: &mut Producer<FinishedSpan>,
        record: FinishedSpan,
    ) -> Attempt {
        let grown = (full.buffer().capacity() * 2).min(LARGEST_RING);
        let Some(mut ring) = self.new_ring(grown).or_else(|| self.new_ring(FIRST_RING)) else {
            return Attempt::Refused(record);
        };
        match ring.push(record) {
            Ok(()) => {
                *full = ring;
                Attempt::Pushed(Pushed {
                    len: 1,
                    filled: true,
                })
            }
            // A new ring has room; were it not so, the span goes the shared way.
            Err(rtrb::PushError::Full(record)) => Attempt::Refused(record),
        }
    }

    /// Gives this thread a ring for this queue; returns its position.
    #[cold]
    fn register(&self, producers: &mut Vec<(u64, Producer<FinishedSpan>)>) -> Option<usize> {
        if producers.len() >= RINGS_PER_THREAD {
            // Rings of queues that are gone.
            producers.retain(|(_, producer)| !producer.is_abandoned());
            if producers.len() >= RINGS_PER_THREAD {
                return None;
            }
        }
        producers.push((self.id, self.new_ring(FIRST_RING)?));
        Some(producers.len() - 1)
    }

    /// A new ring of `capacity` spans, if the queue's bound leaves room for one.
    #[cold]
    fn new_ring(&self, capacity: usize) -> Option<Producer<FinishedSpan>> {
        self.room_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(capacity)
            })
            .ok()?;
        let (producer, consumer) = RingBuffer::new(capacity);
        self.consumers.lock().push(consumer);
        Some(producer)
    }

    /// Moves up to `limit` spans out of the rings into `buffer`, oldest ring first (a
    /// thread's spans stay in order). Returns how many.
    pub(super) fn pop_into(&self, buffer: &mut Vec<FinishedSpan>, limit: usize) -> usize {
        let mut popped = 0;
        let mut consumers = self.consumers.lock();
        let mut at = 0;
        // Stops at `limit`: a backlog spans thousands of rings, most of them full.
        while popped < limit && at < consumers.len() {
            let consumer = &mut consumers[at];
            // Abandoned first: once it is, nothing more arrives, so empty then means done.
            let abandoned = consumer.is_abandoned();
            // One chunk: the ring's position is published once, not once per span.
            let n = consumer.slots().min(limit - popped);
            if n > 0
                && let Ok(chunk) = consumer.read_chunk(n)
            {
                buffer.extend(chunk);
                popped += n;
            }
            if abandoned && consumer.is_empty() {
                let ring = consumers.remove(at);
                self.room_left
                    .fetch_add(ring.buffer().capacity(), Ordering::AcqRel);
            } else {
                at += 1;
            }
        }
        popped
    }

    /// The size of this thread's ring, if it has one.
    pub(super) fn this_threads_capacity(&self) -> Option<usize> {
        PRODUCERS
            .try_with(|producers| {
                let producers = producers.try_borrow().ok()?;
                let (_, producer) = producers.iter().find(|(id, _)| *id == self.id)?;
                Some(producer.buffer().capacity())
            })
            .ok()
            .flatten()
    }

    /// The size of each ring, oldest first.
    #[cfg(test)]
    pub(super) fn capacities(&self) -> Vec<usize> {
        let consumers = self.consumers.lock();
        consumers.iter().map(|c| c.buffer().capacity()).collect()
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
