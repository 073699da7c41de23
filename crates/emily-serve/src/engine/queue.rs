//! A bounded, closable multi-producer multi-consumer queue: handlers push
//! without blocking (a full queue is an answer, 429), workers block for the
//! next job or take what is waiting to fill a batch.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Why a push was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError<T> {
    /// `capacity` items are waiting.
    Full(T),
    /// The queue is closed (the server is shutting down).
    Closed(T),
}

struct Inner<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// The queue.
pub struct JobQueue<T> {
    inner: Mutex<Inner<T>>,
    ready: Condvar,
    capacity: usize,
}

impl<T> JobQueue<T> {
    /// A queue holding at most `capacity` waiting items (0 = none may wait).
    pub fn new(capacity: usize) -> JobQueue<T> {
        JobQueue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panicking holder leaves the deque consistent (every operation is
        // a single push or pop), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an item unless the queue is full or closed.
    pub fn push(&self, item: T) -> Result<(), PushError<T>> {
        let mut g = self.lock();
        if g.closed {
            return Err(PushError::Closed(item));
        }
        if g.items.len() >= self.capacity {
            return Err(PushError::Full(item));
        }
        g.items.push_back(item);
        drop(g);
        self.ready.notify_one();
        Ok(())
    }

    /// Waits for an item; `None` once the queue is closed and empty.
    pub fn pop(&self) -> Option<T> {
        let mut g = self.lock();
        loop {
            if let Some(item) = g.items.pop_front() {
                return Some(item);
            }
            if g.closed {
                return None;
            }
            g = self.ready.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Takes up to `n` waiting items without blocking.
    pub fn take_waiting(&self, n: usize) -> Vec<T> {
        let mut g = self.lock();
        let k = n.min(g.items.len());
        g.items.drain(..k).collect()
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses new items; workers drain what is waiting, then see `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn full_and_closed_queues_refuse_and_drain() {
        let q = JobQueue::new(2);
        q.push(1).unwrap();
        q.push(2).unwrap();
        assert_eq!(q.push(3), Err(PushError::Full(3)));
        assert_eq!(q.len(), 2);
        q.close();
        assert_eq!(q.push(4), Err(PushError::Closed(4)));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.take_waiting(5), vec![2]);
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_blocked_worker_wakes_for_an_item_and_for_close() {
        let q = Arc::new(JobQueue::new(4));
        let w = {
            let q = q.clone();
            std::thread::spawn(move || (q.pop(), q.pop()))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        q.push(7).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        q.close();
        assert_eq!(w.join().unwrap(), (Some(7), None));
    }
}
