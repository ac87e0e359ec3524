//! Sends to other threads that the hot arbiter puts off until its runnable work is done.
//!
//! Waking a parked thread (the SQLite writer, the venue arbiter) is a syscall: 2–11 µs at the
//! median on our machines, more at the tail. Made in the middle of a tick's chain (QuoteEngine
//! persisting its decision before OrderManager diffs, the feed handing the tick to the mock
//! before QuoteEngine prices it), the tick waited for it. On a thread where [`start`] ran, such
//! sends are queued with [`after_turn`] and one local task makes them, in the order queued, once
//! the arbiter has nothing else runnable: it waits in tokio's `yield_now`, which wakes it only
//! after every ready task has run (or at the scheduler's next turn under constant load). So a
//! tick's chain (feed → QuoteEngine → OrderManager ⇄ RiskGuard) finishes first, and a busy
//! period pays each wake once.
//!
//! Nothing is lost or reordered: the queue is first in, first out; a store read or flush from
//! the thread makes the queued sends first (so it sees every write queued before it); and when
//! the task ends (its arbiter stops, or a queued send panics) whatever is left is sent at once
//! and the thread goes back to sending immediately.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

type Send = Box<dyn FnOnce()>;

#[derive(Default)]
struct Queue {
    /// A task on this thread makes the queued sends.
    active: bool,
    sends: VecDeque<Send>,
    /// That task, while it waits for a send.
    waker: Option<Waker>,
}

thread_local! {
    static QUEUE: RefCell<Queue> = RefCell::default();
}

/// Puts this thread's cross-thread sends off until its runnable work is done. Call it on the
/// hot arbiter, inside its runtime; false if it was already done there.
pub fn start() -> bool {
    let fresh = QUEUE.with(|q| !std::mem::replace(&mut q.borrow_mut().active, true));
    if fresh {
        actix_rt::spawn(make_sends());
    }
    fresh
}

/// Runs `send` once this thread's runnable work is done, if [`start`] ran here; now otherwise.
pub fn after_turn(send: impl FnOnce() + 'static) {
    let mut send = Some(send);
    let waker = QUEUE
        .try_with(|q| {
            let mut q = q.borrow_mut();
            if !q.active {
                return None;
            }
            if let Some(s) = send.take() {
                q.sends.push_back(Box::new(s));
            }
            q.waker.take()
        })
        .ok()
        .flatten();
    if let Some(w) = waker {
        w.wake();
    }
    // Not putting sends off here (or the thread is ending): send now.
    if let Some(s) = send {
        s();
    }
}

/// Makes every queued send now, oldest first (a store read calls this so that it sees every
/// write queued before it).
pub fn send_queued() {
    while let Some(send) = QUEUE
        .try_with(|q| q.borrow_mut().sends.pop_front())
        .ok()
        .flatten()
    {
        send();
    }
}

/// The task of [`start`]: waits for a send, lets every ready task run, sends. Whenever the
/// task is dropped (its arbiter stopped, even before it first ran; or a send panicked), the
/// thread stops putting sends off and makes the queued ones.
fn make_sends() -> impl std::future::Future<Output = ()> {
    struct Stopped;
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = QUEUE.try_with(|q| {
                let mut q = q.borrow_mut();
                q.active = false;
                q.waker = None;
            });
            send_queued();
        }
    }
    let stopped = Stopped;
    async move {
        let _stopped = stopped;
        loop {
            poll_fn(|cx| {
                QUEUE.with(|q| {
                    let mut q = q.borrow_mut();
                    if q.sends.is_empty() {
                        q.waker = Some(cx.waker().clone());
                        Poll::Pending
                    } else {
                        Poll::Ready(())
                    }
                })
            })
            .await;
            tokio::task::yield_now().await;
            send_queued();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Log = Rc<RefCell<Vec<&'static str>>>;

    /// True while this thread puts its sends off.
    fn is_active() -> bool {
        QUEUE.with(|q| q.borrow().active)
    }

    fn note(log: &Log, what: &'static str) -> impl FnOnce() + 'static {
        let log = log.clone();
        move || log.borrow_mut().push(what)
    }

    /// Runs until the queue's task has had a chance to send (twice through the scheduler).
    async fn settle() {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }

    #[actix_rt::test]
    async fn a_queued_send_waits_for_the_chain_of_ready_tasks_and_sends_keep_their_order() {
        assert!(start());
        assert!(!start(), "a second start on the thread is refused");
        let log: Log = Rc::default();
        // A chain like a tick's: each step makes the next one ready, on this thread.
        let (tx1, rx1) = tokio::sync::oneshot::channel::<()>();
        let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
        let l = log.clone();
        let step2 = actix_rt::spawn(async move {
            let _ = rx2.await;
            l.borrow_mut().push("chain 2");
        });
        let l = log.clone();
        let step1 = actix_rt::spawn(async move {
            let _ = rx1.await;
            l.borrow_mut().push("chain 1");
            after_turn(note(&l, "send b"));
            let _ = tx2.send(());
        });
        after_turn(note(&log, "send a"));
        let _ = tx1.send(());
        assert!(
            log.borrow().is_empty(),
            "nothing is sent while the caller runs"
        );
        let _ = step1.await;
        let _ = step2.await;
        settle().await;
        assert_eq!(
            *log.borrow(),
            vec!["chain 1", "chain 2", "send a", "send b"],
            "the sends wait for the whole chain and keep their order"
        );
    }

    #[test]
    fn a_thread_that_did_not_start_sends_at_once() {
        let log: Log = Rc::default();
        after_turn(note(&log, "send"));
        assert_eq!(*log.borrow(), vec!["send"]);
        assert!(!is_active());
    }

    #[test]
    fn sends_still_queued_when_the_arbiter_stops_are_made_then() {
        let sent = Arc::new(AtomicUsize::new(0));
        let s = sent.clone();
        let sys = actix_rt::System::new();
        sys.block_on(async move {
            start();
            for _ in 0..3 {
                let s = s.clone();
                after_turn(move || {
                    s.fetch_add(1, Ordering::SeqCst);
                });
            }
            // The block ends before the queue's task runs again.
        });
        drop(sys);
        assert_eq!(sent.load(Ordering::SeqCst), 3, "no queued send is lost");
        assert!(!is_active(), "the thread sends at once afterwards");
        let log: Log = Rc::default();
        after_turn(note(&log, "later"));
        assert_eq!(*log.borrow(), vec!["later"]);
    }

    #[actix_rt::test]
    async fn a_send_that_panics_loses_no_other_send() {
        start();
        let log: Log = Rc::default();
        after_turn(|| panic!("a queued send failed"));
        after_turn(note(&log, "after the panic"));
        settle().await;
        assert_eq!(*log.borrow(), vec!["after the panic"]);
        assert!(!is_active(), "the queue's task ended: sends go at once now");
        after_turn(note(&log, "direct"));
        assert_eq!(*log.borrow(), vec!["after the panic", "direct"]);
    }
}
