//! Worker threads over one bounded [`JobQueue`]: started together, drained
//! and joined together on shutdown.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::JobQueue;

/// Threads taking jobs of type `T` from a shared queue.
pub(crate) struct WorkerPool<T> {
    queue: Arc<JobQueue<T>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl<T: Send + 'static> WorkerPool<T> {
    /// Starts `n` threads named `name-i`, each running `body(queue)` until it
    /// returns; the queue holds at most `capacity` waiting jobs.
    pub fn start<F>(name: &str, n: usize, capacity: usize, body: F) -> WorkerPool<T>
    where
        F: Fn(Arc<JobQueue<T>>) + Clone + Send + 'static,
    {
        let queue = Arc::new(JobQueue::new(capacity));
        let workers = (0..n)
            .map(|i| {
                let (queue, body) = (queue.clone(), body.clone());
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || body(queue))
                    .unwrap_or_else(|e| panic!("cannot start worker thread {name}-{i}: {e}"))
            })
            .collect();
        WorkerPool {
            queue,
            workers: Mutex::new(workers),
        }
    }
}

impl<T> WorkerPool<T> {
    /// The shared queue.
    pub fn queue(&self) -> &JobQueue<T> {
        &self.queue
    }

    /// Refuses new jobs, lets the workers finish every accepted one, and
    /// waits for them.
    pub fn shutdown(&self) {
        self.queue.close();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            if w.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

impl<T> Drop for WorkerPool<T> {
    fn drop(&mut self) {
        self.queue.close();
    }
}
