//! The yielding future both per-poll benches (`peers`, `context_polls`) drive.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

/// Pending `polls - 1` times, then ready: every re-poll enters and leaves the wrapper's
/// context once.
pub struct Yields(pub u32);

impl Future for Yields {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::hint::black_box(self.0) == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        std::hint::black_box(cx.waker()).wake_by_ref();
        Poll::Pending
    }
}

/// Polls per future.
pub const POLLS: u32 = 100;

/// Polls `future` to its end on this thread with a no-op waker.
pub fn poll_to_end(future: impl Future<Output = ()>) {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    while future.as_mut().poll(&mut cx).is_pending() {}
}
