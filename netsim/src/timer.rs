//! The send-side clock: a dedicated thread holding due answers in a min-heap and writing each
//! to the device when due. Waits use the futex hrtimer with 1 ns timer slack instead of a
//! runtime's 1 ms wheel, and the thread records how late each send was.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::stats::Counters;
use crate::sys;

struct Due {
    at: Instant,
    order: u64,
    packet: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Due) -> Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Due>>,
    next_order: u64,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// Handle to schedule answers; dropping the [`Timer`] stops the thread (pending answers are lost).
#[derive(Clone)]
pub(crate) struct Scheduler {
    shared: Arc<Shared>,
}

impl Scheduler {
    /// Sends `packet` at `at` (at once if `at` has passed).
    pub fn schedule(&self, at: Instant, packet: Vec<u8>) {
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let order = state.next_order;
        state.next_order += 1;
        let earliest = state.heap.peek().is_none_or(|Reverse(top)| at < top.at);
        state.heap.push(Reverse(Due { at, order, packet }));
        drop(state);
        if earliest {
            self.shared.wake.notify_one();
        }
    }
}

/// The timer thread.
pub(crate) struct Timer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Timer {
    /// Starts the thread writing due packets to `device`.
    pub fn spawn(device: Arc<File>, counters: Arc<Counters>) -> std::io::Result<Timer> {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("netsim-timer".into())
            .spawn(move || run(&thread_shared, &device, &counters))?;
        Ok(Timer {
            shared,
            thread: Some(thread),
        })
    }

    pub fn scheduler(&self) -> Scheduler {
        Scheduler {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared, device: &File, counters: &Counters) {
    sys::set_timer_slack(Duration::from_nanos(1));
    let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if state.stop {
            return;
        }
        let Some(Reverse(top)) = state.heap.peek() else {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        let now = Instant::now();
        if top.at > now {
            let wait = top.at - now;
            state = shared
                .wake
                .wait_timeout(state, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        let Some(Reverse(due)) = state.heap.pop() else {
            continue;
        };
        drop(state);
        let late = due.at.elapsed();
        match (&*device).write(&due.packet) {
            Ok(_) => Counters::add(&counters.answered),
            Err(_) => Counters::add(&counters.write_errors),
        }
        if let Ok(mut lateness) = counters.lateness.lock() {
            lateness.record(late);
        }
        state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    }
}
