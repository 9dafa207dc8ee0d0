//! Many requests, one database round trip. Under load, requests that need the database
//! at the same moment queue here; a few worker tasks each take everything queued (up to
//! [`MAX_BATCH`]), serve it with one query or one transaction, and answer each request.
//! Every request is still answered by database work that started after it arrived, so it
//! sees everything committed before it (a key revoked a moment ago is refused) and, for
//! writes, does not go on until its own write is committed. Alone, a request waits for
//! nothing but its own round trip.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use tokio::sync::{Mutex, mpsc, oneshot};

use super::Db;

/// Most requests served by one round trip.
pub(crate) const MAX_BATCH: usize = 256;
/// Requests waiting beyond this wait to queue (back-pressure).
const QUEUE: usize = 4096;

/// Serves a batch: one answer per input, in order.
pub(crate) type Handler<I, O> = fn(Db, Vec<I>) -> BatchFuture<O>;
/// What a [`Handler`] returns.
pub(crate) type BatchFuture<O> = Pin<Box<dyn Future<Output = Vec<Result<O, String>>> + Send>>;

struct Job<I, O> {
    input: I,
    done: oneshot::Sender<Result<O, String>>,
}

type Queue<I, O> = Arc<Mutex<mpsc::Receiver<Job<I, O>>>>;

/// A queue and its workers, started on first use.
pub(crate) struct Batcher<I, O> {
    db: Db,
    workers: usize,
    handler: Handler<I, O>,
    sender: OnceLock<mpsc::Sender<Job<I, O>>>,
}

impl<I, O> std::fmt::Debug for Batcher<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// `workers` tasks serving batches with `handler`: one on SQLite (it has one writer
    /// anyway), a few on PostgreSQL so a batch is gathered while another runs.
    pub(crate) fn new(db: Db, handler: Handler<I, O>) -> Self {
        let workers = if db.is_postgres() { 4 } else { 1 };
        Self {
            db,
            workers,
            handler,
            sender: OnceLock::new(),
        }
    }

    /// Serves `input` in the next batch.
    pub(crate) async fn call(&self, input: I) -> Result<O, String> {
        let sender = self.sender.get_or_init(|| self.spawn());
        let (done, answered) = oneshot::channel();
        let stopped = || "the database worker has stopped".to_owned();
        sender
            .send(Job { input, done })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    fn spawn(&self) -> mpsc::Sender<Job<I, O>> {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let queue: Queue<I, O> = Arc::new(Mutex::new(receiver));
        for _ in 0..self.workers {
            tokio::spawn(run(self.db.clone(), Arc::clone(&queue), self.handler));
        }
        sender
    }
}

/// One worker: gathers what is queued, serves it, answers; until the gateway goes.
async fn run<I, O>(db: Db, queue: Queue<I, O>, handler: Handler<I, O>) {
    loop {
        let batch = {
            let mut receiver = queue.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let (inputs, waiting): (Vec<I>, Vec<_>) =
            batch.into_iter().map(|job| (job.input, job.done)).unzip();
        let answers = handler(db.clone(), inputs).await;
        for (done, answer) in waiting.into_iter().zip(answers) {
            let _ = done.send(answer);
        }
    }
}
