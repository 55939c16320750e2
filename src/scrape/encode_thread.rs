//! One thread that encodes every exposition.
//!
//! A scrape of a large host is a multi-megabyte text. Built on whichever runtime thread serves
//! the request, glibc caches such blocks in each thread's arena and the process keeps several
//! of them (peak RSS grew from 16 to 38 MiB over 40 scrapes of 1,000 domains). Built on one
//! thread, they come from one arena and the next scrape reuses the same memory.

use std::sync::mpsc;
use std::sync::Mutex;

use crate::lock::MutexUnpoisoned;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Runs closures on the encoding thread, or on tokio's blocking pool when that thread could not
/// be started: never on the runtime worker that awaits the result, where an encoding of several
/// megabytes would hold up every other task on it.
pub struct EncodeThread {
    jobs: Option<Mutex<mpsc::Sender<Job>>>,
}

impl EncodeThread {
    pub fn spawn() -> Self {
        let (sender, receiver) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("xen_exporter-encode".to_owned())
            .spawn(move || {
                for job in receiver {
                    // A panic in one encoding must not take the thread (and every later scrape)
                    // with it; the waiting scrape sees its reply channel closed instead.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
        match started {
            Ok(_) => Self {
                jobs: Some(Mutex::new(sender)),
            },
            Err(error) => {
                tracing::warn!(%error, "cannot start the encoding thread; encoding on tokio's blocking threads");
                Self { jobs: None }
            }
        }
    }

    /// Runs `work` on the encoding thread and waits for its result; `None` if it panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let Some(jobs) = &self.jobs else {
            return tokio::task::spawn_blocking(work).await.ok();
        };
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
        });
        let sent = jobs.lock_unpoisoned().send(job);
        if let Err(mpsc::SendError(job)) = sent {
            // The thread is gone (it cannot be, short of an abort): encode on a blocking thread.
            if tokio::task::spawn_blocking(job).await.is_err() {
                return None;
            }
        }
        result.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without its thread, work still runs off the runtime: on a current-thread runtime the
    /// worker is the test's own thread, so the work must see another one.
    #[tokio::test(flavor = "current_thread")]
    async fn without_its_thread_work_runs_off_the_runtime_worker() {
        let worker = std::thread::current().id();
        let encoder = EncodeThread { jobs: None };
        let ran_on = encoder
            .run(|| std::thread::current().id())
            .await
            .expect("work ran");
        assert_ne!(ran_on, worker);
        // A panic is `None`, as on the encoding thread.
        assert_eq!(encoder.run(|| panic!("encode failed")).await, None::<()>);
    }

    /// With a dead encoding thread (its receiver gone), the job runs off the runtime too.
    #[tokio::test(flavor = "current_thread")]
    async fn with_a_dead_thread_work_runs_off_the_runtime_worker() {
        let worker = std::thread::current().id();
        let (sender, receiver) = mpsc::channel::<Job>();
        drop(receiver);
        let encoder = EncodeThread {
            jobs: Some(Mutex::new(sender)),
        };
        let ran_on = encoder
            .run(|| std::thread::current().id())
            .await
            .expect("work ran");
        assert_ne!(ran_on, worker);
    }
}
