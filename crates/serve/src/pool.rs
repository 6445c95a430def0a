//! A bounded pool for blocking work (model inference, SQL execution): at most
//! `workers` jobs run at once on tokio's blocking threads, at most `queue`
//! more wait for a turn, and anything beyond that is turned away at once so
//! that a crowd of users queues up to a point and then gets "busy, retry"
//! instead of exhausting memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("{pool}: all {capacity} places (running and waiting) are taken")]
    Busy { pool: &'static str, capacity: usize },
    #[error("{pool}: the job panicked")]
    Panicked { pool: &'static str },
}

#[derive(Debug)]
pub struct WorkerPool {
    name: &'static str,
    running: Arc<Semaphore>,
    /// Jobs admitted and not yet finished: waiting for a worker or running.
    admitted: Arc<AtomicUsize>,
    capacity: usize,
    workers: usize,
}

/// What a job's result comes with: how long it waited for a worker.
#[derive(Debug)]
pub struct Finished<T> {
    pub value: T,
    pub waited: Duration,
}

impl WorkerPool {
    /// `workers` is at least 1.
    pub fn new(name: &'static str, workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            name,
            running: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: workers + queue,
            workers,
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Jobs waiting or running now.
    pub fn load(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Runs `job` on a blocking thread once a worker is free. If the caller
    /// stops waiting (its request hit the deadline), a job not yet started is
    /// dropped, and a job already running finishes and keeps its worker until
    /// then, so the pool's bound holds.
    pub async fn run<T, F>(&self, job: F) -> Result<Finished<T>, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ticket = self.admit()?;
        let queued_at = Instant::now();
        // The semaphore is never closed, so acquiring only fails if it was.
        let permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Busy {
                pool: self.name,
                capacity: self.capacity,
            })?;
        let waited = queued_at.elapsed();
        let handle = tokio::task::spawn_blocking(move || {
            let value = job();
            drop(permit);
            drop(ticket);
            value
        });
        let value = handle
            .await
            .map_err(|_| PoolError::Panicked { pool: self.name })?;
        Ok(Finished { value, waited })
    }

    fn admit(&self) -> Result<Ticket, PoolError> {
        let mut current = self.admitted.load(Ordering::Acquire);
        loop {
            if current >= self.capacity {
                return Err(PoolError::Busy {
                    pool: self.name,
                    capacity: self.capacity,
                });
            }
            match self.admitted.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Ticket {
                        admitted: self.admitted.clone(),
                    })
                }
                Err(actual) => current = actual,
            }
        }
    }
}

/// One admitted job; gives its place back when dropped.
struct Ticket {
    admitted: Arc<AtomicUsize>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_pool_turns_work_away_and_frees_places_when_done() {
        let pool = Arc::new(WorkerPool::new("inference", 1, 1));
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();

        // One running (blocked until released) ...
        let running = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    1
                })
                .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        // ... one waiting ...
        let waiting = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 2).await })
        };
        while pool.load() < 2 {
            tokio::task::yield_now().await;
        }
        // ... and the third is refused.
        assert_eq!(
            pool.run(|| 3).await.unwrap_err(),
            PoolError::Busy {
                pool: "inference",
                capacity: 2
            }
        );

        release_tx.send(()).unwrap();
        assert_eq!(running.await.unwrap().unwrap().value, 1);
        assert_eq!(waiting.await.unwrap().unwrap().value, 2);
        assert_eq!(pool.load(), 0);
        assert_eq!(pool.run(|| 4).await.unwrap().value, 4);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_gives_its_place_back() {
        let pool = WorkerPool::new("execution", 1, 0);
        let result = pool.run(|| -> u8 { panic!("boom") }).await;
        assert_eq!(
            result.unwrap_err(),
            PoolError::Panicked { pool: "execution" }
        );
        assert_eq!(pool.load(), 0);
        assert_eq!(pool.run(|| 5).await.unwrap().value, 5);
    }
}
