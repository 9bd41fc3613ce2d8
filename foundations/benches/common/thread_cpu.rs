//! The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): what a measured thread
//! spends itself, without the time it waits for a core that other threads (a consumer, an
//! exporter, a second producer) hold on a small machine.

/// The CPU time this thread spends in `work`.
pub fn thread_cpu(work: impl FnOnce()) -> std::time::Duration {
    fn now() -> std::time::Duration {
        let mut time = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `clock_gettime` writes one `timespec`, which `time` is, and keeps no pointer.
        let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
        assert_eq!(status, 0, "the thread CPU clock is readable");
        std::time::Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
    }
    let before = now();
    work();
    now().saturating_sub(before)
}
