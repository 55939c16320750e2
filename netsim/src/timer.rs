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

/// How hard the timer thread tries to be on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Run the timer and reader threads under `SCHED_FIFO` (best effort; needs root).
    pub realtime: bool,
    /// Wake this much before a deadline and busy-wait the rest: trades CPU for the
    /// tens of microseconds a futex wake-up takes.
    pub spin: Duration,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            realtime: true,
            spin: Duration::from_micros(50),
        }
    }
}

/// Real-time priority of the simulator's threads: above ordinary tasks, below kernel threads
/// that use 50.
pub(crate) const REALTIME_PRIORITY: i32 = 10;

/// The timer thread.
pub(crate) struct Timer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Timer {
    /// Starts the thread writing due packets to `device`.
    pub fn spawn(
        device: Arc<File>,
        counters: Arc<Counters>,
        tuning: Tuning,
    ) -> std::io::Result<Timer> {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("netsim-timer".into())
            .spawn(move || run(&thread_shared, &device, &counters, tuning))?;
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

fn run(shared: &Shared, device: &File, counters: &Counters, tuning: Tuning) {
    sys::set_timer_slack(Duration::from_nanos(1));
    if tuning.realtime {
        // Best effort: without CAP_SYS_NICE the answers are just less punctual.
        let _ = sys::set_realtime(REALTIME_PRIORITY);
    }
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
            if wait > tuning.spin {
                state = shared
                    .wake
                    .wait_timeout(state, wait - tuning.spin)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            } else {
                // Close enough: spin (without the lock, so the reader can keep queueing).
                let at = top.at;
                drop(state);
                while Instant::now() < at {
                    std::hint::spin_loop();
                }
                state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            }
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
