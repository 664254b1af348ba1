//! The SQLite writer thread: the only owner of the database connection. Store calls send it
//! boxed jobs over a channel. It runs every job waiting at that moment in one transaction
//! (group commit), each job inside its own savepoint so that a failing job rolls back alone.
//! Every caller gets its result only after COMMIT returned.
//!
//! One transaction per batch instead of one per job is what makes durable writes cheap. A
//! commit in WAL mode costs a write to the WAL file, and under load one commit serves every
//! request that arrived while the previous batch ran.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;
use wxkf_core::ports::StoreError;

/// The maximum number of jobs committed together. It bounds how long the first job of a batch
/// waits for the jobs queued behind it.
const MAX_BATCH: usize = 1024;

/// A failure inside a job, turned into a [`StoreError`] for the caller.
#[derive(Debug, thiserror::Error)]
pub(super) enum JobError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Corrupt(String),
    /// The database file cannot be used as this store needs it.
    #[error("{0}")]
    Unsupported(String),
    /// The job panicked; its savepoint was rolled back and the writer thread carries on.
    #[error("store job panicked")]
    Panicked,
}

impl From<JobError> for StoreError {
    fn from(error: JobError) -> StoreError {
        match error {
            JobError::Sqlite(error) => StoreError::unavailable(error),
            JobError::Corrupt(message) => StoreError::Corrupt(message),
            error @ (JobError::Unsupported(_) | JobError::Panicked) => {
                StoreError::unavailable(error)
            }
        }
    }
}

/// The writer thread stopped before it replied, because it panicked or the store is closing.
#[derive(Debug, thiserror::Error)]
#[error("sqlite writer thread stopped")]
struct WriterStopped;

/// A job with its reply channel, type-erased so that jobs of any result type share a queue.
trait Command: Send {
    /// Runs the job inside the open transaction and keeps its result. Returns whether the job
    /// succeeded, so that the caller knows whether to keep its savepoint.
    fn execute(&mut self, db: &Connection) -> bool;

    /// Sends the kept result, or the commit's failure, to the waiting caller.
    fn reply(self: Box<Self>, commit: Result<(), &Arc<rusqlite::Error>>);
}

type Work<T> = Box<dyn FnOnce(&Connection) -> Result<T, JobError> + Send>;

struct Job<T> {
    work: Option<Work<T>>,
    result: Option<Result<T, JobError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send> Command for Job<T> {
    fn execute(&mut self, db: &Connection) -> bool {
        let work = self.work.take().expect("a job is executed once");
        // A panicking job must not take the writer thread, and with it every later call, down.
        // Its half-done writes are undone with its savepoint, so unwinding leaves nothing behind
        // that later jobs could observe.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(db)))
            .unwrap_or(Err(JobError::Panicked));
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn reply(self: Box<Self>, commit: Result<(), &Arc<rusqlite::Error>>) {
        let result = match (self.result, commit) {
            (Some(Err(error)), _) => Err(StoreError::from(error)),
            (Some(Ok(_)), Err(error)) => Err(StoreError::unavailable(Arc::clone(error))),
            (Some(Ok(value)), Ok(())) => Ok(value),
            // The batch failed before this job ran.
            (None, Err(error)) => Err(StoreError::unavailable(Arc::clone(error))),
            (None, Ok(())) => unreachable!("a committed batch has run every job"),
        };
        // The caller may have stopped waiting (its request was cancelled); the job's effect
        // stays committed either way, so there is no one left to tell.
        let _ = self.reply.send(result);
    }
}

/// The handle store calls use to reach the writer thread. Dropping it lets the thread finish
/// the jobs already sent, then waits for the thread to close the database.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Box<dyn Command>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread, which owns `db` from now on.
    pub(super) fn start(db: Connection) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Command>>();
        let thread = std::thread::Builder::new()
            .name("wxkf-sqlite-writer".to_owned())
            .spawn(move || run(db, queue))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `work` on the writer thread inside a transaction and returns its result once the
    /// transaction has committed.
    pub(super) async fn call<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JobError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work: Some(Box::new(work)),
            result: None,
            reply,
        };
        let jobs = self
            .jobs
            .as_ref()
            .expect("the job sender is only taken in drop");
        jobs.send(Box::new(job))
            .map_err(|_| StoreError::unavailable(WriterStopped))?;
        answer
            .await
            .map_err(|_| StoreError::unavailable(WriterStopped))?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop after the jobs already queued.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            // A panic on the writer thread was already reported to its callers as
            // WriterStopped; there is nothing more to do with it here.
            let _ = thread.join();
        }
    }
}

/// Waits for a job, takes every job queued behind it and commits them together, until every
/// [`Writer`] handle is gone.
fn run(db: Connection, queue: mpsc::Receiver<Box<dyn Command>>) {
    let mut batch: Vec<Box<dyn Command>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }

        let committed = run_batch(&db, &mut batch).map_err(Arc::new);
        if let Err(error) = &committed {
            tracing::error!(error = %error, jobs = batch.len(), "sqlite batch failed");
        }

        for job in batch.drain(..) {
            job.reply(committed.as_ref().map(|_| ()));
        }
    }
}

/// Runs the jobs in one transaction, each in its own savepoint, and commits.
fn run_batch(db: &Connection, batch: &mut [Box<dyn Command>]) -> rusqlite::Result<()> {
    db.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let outcome = run_jobs(db, batch).and_then(|()| {
        db.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    });
    if outcome.is_err() && !db.is_autocommit() {
        // Best effort: if even the rollback fails, the connection is unusable and the next
        // batch's BEGIN reports that.
        let _ = db.execute_batch("ROLLBACK");
    }
    outcome
}

fn run_jobs(db: &Connection, batch: &mut [Box<dyn Command>]) -> rusqlite::Result<()> {
    for job in batch.iter_mut() {
        db.prepare_cached("SAVEPOINT job")?.execute([])?;
        if !job.execute(db) {
            db.prepare_cached("ROLLBACK TO job")?.execute([])?;
        }
        db.prepare_cached("RELEASE job")?.execute([])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_rows(db: &Connection) -> Result<Vec<i64>, JobError> {
        let mut statement = db.prepare("SELECT x FROM t ORDER BY x")?;
        let rows = statement.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn writer_with_table(path: &std::path::Path) -> Writer {
        let db = Connection::open(path).expect("the database opens");
        db.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER NOT NULL);")
            .expect("the table is created");
        Writer::start(db).expect("the writer thread starts")
    }

    #[tokio::test]
    async fn failed_job_rolls_back_alone() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let writer = writer_with_table(&dir.path().join("t.db"));

        let failing = writer.call(|db| {
            db.execute("INSERT INTO t (x) VALUES (1)", [])?;
            Err::<(), _>(JobError::Corrupt("job gave up after writing".to_owned()))
        });
        let succeeding = writer.call(|db| {
            db.execute("INSERT INTO t (x) VALUES (2)", [])?;
            Ok(())
        });
        let (failed, succeeded) = tokio::join!(failing, succeeding);

        assert!(
            matches!(&failed, Err(StoreError::Corrupt(message)) if message == "job gave up after writing"),
            "the failing job gets its own error, got {failed:?}"
        );
        assert!(
            succeeded.is_ok(),
            "the other job succeeds, got {succeeded:?}"
        );
        let rows = writer.call(count_rows).await.expect("rows are readable");
        assert_eq!(rows, vec![2], "only the succeeding job's row is kept");
    }

    #[tokio::test]
    async fn panicking_job_leaves_writer_running() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let writer = writer_with_table(&dir.path().join("t.db"));

        let panicked = writer
            .call(|db| -> Result<(), JobError> {
                db.execute("INSERT INTO t (x) VALUES (1)", [])?;
                panic!("deliberate panic inside a store job")
            })
            .await;
        let after = writer
            .call(|db| {
                db.execute("INSERT INTO t (x) VALUES (2)", [])?;
                count_rows(db)
            })
            .await;

        assert!(
            matches!(&panicked, Err(StoreError::Unavailable(_))),
            "a panicking job reports the store unavailable, got {panicked:?}"
        );
        assert_eq!(
            after.expect("the writer still runs jobs"),
            vec![2],
            "the panicking job's row was rolled back"
        );
    }

    #[tokio::test]
    async fn result_arrives_after_commit() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("t.db");
        let writer = writer_with_table(&path);

        writer
            .call(|db| {
                db.execute("INSERT INTO t (x) VALUES (7)", [])?;
                Ok(())
            })
            .await
            .expect("the insert succeeds");

        let other = Connection::open(&path).expect("a second connection opens");
        let seen: Vec<i64> = count_rows(&other).expect("the second connection reads");
        assert_eq!(
            seen,
            vec![7],
            "another connection sees the row as soon as the call returns"
        );
    }
}
