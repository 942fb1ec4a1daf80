//! Gathers what concurrent requests ask of the database into batches: a few writer tasks each
//! take every request waiting (up to a weight) and run one statement or transaction for all of
//! them, so a busy process pays a round trip and a commit per batch, not per request.

use std::{future::Future, sync::Arc};

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::{error::StoreError, ports::StoreResult};

struct Job<T, A> {
    item: T,
    reply: oneshot::Sender<StoreResult<A>>,
}

/// Sends items of type `T` to the writers; each is answered with its own `A`.
pub(super) struct Gatherer<T, A> {
    jobs: mpsc::Sender<Job<T, A>>,
    what: &'static str,
}

impl<T, A> Clone for Gatherer<T, A> {
    fn clone(&self) -> Self {
        Self { jobs: self.jobs.clone(), what: self.what }
    }
}

impl<T: Send + 'static, A: Send + 'static> Gatherer<T, A> {
    /// Starts `writers` tasks; each takes items until their `weight` reaches `max_weight` and
    /// hands them to `write`, which answers each item in order, or fails them all.
    pub(super) fn spawn<W, F>(
        what: &'static str,
        writers: usize,
        max_weight: usize,
        weight: fn(&T) -> usize,
        write: W,
    ) -> Self
    where
        W: Fn(Vec<T>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = StoreResult<Vec<StoreResult<A>>>> + Send,
    {
        let (jobs, rx) = mpsc::channel::<Job<T, A>>(4 * max_weight);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers {
            let (rx, write) = (rx.clone(), write.clone());
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        // Requests sent together (a batch acknowledgement's settlements, spawned at
                        // once) run before this task resumes, so they join this batch.
                        tokio::task::yield_now().await;
                        let mut total = weight(&first.item);
                        let mut batch = vec![first];
                        while total < max_weight {
                            let Ok(job) = rx.try_recv() else { break };
                            total += weight(&job.item);
                            batch.push(job);
                        }
                        batch
                    };
                    let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().map(|j| (j.item, j.reply)).unzip();
                    match write(items).await {
                        Ok(answers) => {
                            for (reply, answer) in replies.into_iter().zip(answers) {
                                let _ = reply.send(answer);
                            }
                        }
                        Err(e) => {
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                }
            });
        }
        Self { jobs, what }
    }

    /// Sends `item` to the writers and waits for its answer.
    pub(super) async fn ask(&self, item: T) -> StoreResult<A> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::unavailable(format!("the PostgreSQL {} stopped", self.what));
        self.jobs.send(Job { item, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}
