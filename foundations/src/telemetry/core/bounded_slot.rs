//! [`BoundedSlot`]: where a live span keeps its `limits::Bounded` box (links, spilled tags,
//! the span limits' counts), and how that is dropped.
//!
//! This module owns only the slot's drop; what the box holds is the `limits` module's, and
//! when a span hands it on is the `span` module's.

use super::limits::Bounded;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

/// A live span's `bounded`: an `Option<Box<Bounded>>` (it dereferences to one) whose drop is
/// a test in line, and a call only when there is a box. As a plain field, its drop is an
/// out-of-line call for every span, box or not, though a finishing record has taken the box
/// by then.
pub(crate) type BoundedSlot = BoxSlot<Bounded>;

/// An `Option<Box<T>>` dropped by a test in line (see [`BoundedSlot`]).
pub(crate) struct BoxSlot<T>(ManuallyDrop<Option<Box<T>>>);

impl<T> Default for BoxSlot<T> {
    fn default() -> Self {
        Self(ManuallyDrop::new(None))
    }
}

impl<T> Drop for BoxSlot<T> {
    #[inline]
    fn drop(&mut self) {
        // Taken, then dropped: `ManuallyDrop` is left holding `None`, so nothing leaks.
        if let Some(boxed) = self.0.take() {
            drop_box(boxed);
        }
    }
}

/// Out of line: few spans still hold a box as they are dropped.
#[inline(never)]
fn drop_box<T>(boxed: Box<T>) {
    drop(boxed);
}

impl<T> Deref for BoxSlot<T> {
    type Target = Option<Box<T>>;

    #[inline]
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> DerefMut for BoxSlot<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_box_left_in_the_slot_is_dropped_with_it_and_a_taken_one_is_not() {
        let witness = Arc::new(());
        let mut slot = BoxSlot::default();
        *slot = Some(Box::new(Arc::clone(&witness)));
        assert_eq!(Arc::strong_count(&witness), 2);
        drop(slot);
        assert_eq!(
            Arc::strong_count(&witness),
            1,
            "the slot's box was not dropped"
        );

        let mut slot = BoxSlot::default();
        *slot = Some(Box::new(Arc::clone(&witness)));
        let taken = slot.take();
        drop(slot);
        assert_eq!(
            Arc::strong_count(&witness),
            2,
            "a taken box stays with its taker"
        );
        drop(taken);
        assert_eq!(Arc::strong_count(&witness), 1);
    }
}
