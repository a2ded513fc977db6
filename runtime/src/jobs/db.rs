//! The job table, in SQLite (`<repo>/jobs.sqlite`): a job is on disk, committed and synced,
//! before its 202 goes out. SQLite rather than files of our own: atomic state changes, indexes
//! for listing by function, state and time, and a journal that survives `kill -9`.

use super::{JobState, JobView, ListQuery, NewJob};
use crate::error::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// The schema; `seq` orders jobs by submission (and pages through them).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    function     TEXT NOT NULL,
    function_cid TEXT NOT NULL,
    input_cid    TEXT NOT NULL,
    params       TEXT NOT NULL,
    use_cache    INTEGER NOT NULL,
    pure         INTEGER NOT NULL,
    callback_url TEXT,
    state        TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    started_ms   INTEGER,
    finished_ms  INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0,
    http_status  INTEGER,
    result       TEXT,
    error        TEXT,
    callback     TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, seq);
CREATE INDEX IF NOT EXISTS jobs_by_function ON jobs(function, seq);
CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs(finished_ms);
";

const COLUMNS: &str = "id, function, function_cid, input_cid, params, use_cache, pure, \
     callback_url, state, created_ms, started_ms, finished_ms, attempts, http_status, result, \
     error, callback, seq";

fn db_err(e: rusqlite::Error) -> Error {
    Error::Io(std::io::Error::other(format!("the job database: {e}")))
}

/// The open database. Its calls block (a commit syncs the disk): call them off the async
/// workers.
pub struct Db {
    conn: Connection,
}

impl Db {
    /// Opens (creating) the database at `path`, in WAL mode with full syncs.
    pub fn open(path: &Path) -> Result<Db> {
        let conn = Connection::open(path).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        Ok(Db { conn })
    }

    /// Stores a new queued job.
    pub fn insert(&self, j: &NewJob, now_ms: i64) -> Result<()> {
        let params_json = serde_json::to_string(&j.params).expect("a map of strings");
        self.conn
            .execute(
                "INSERT INTO jobs (id, function, function_cid, input_cid, params, use_cache, pure, \
                 callback_url, state, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9)",
                params![
                    j.id,
                    j.function,
                    j.function_cid,
                    j.input_cid,
                    params_json,
                    j.use_cache,
                    j.pure,
                    j.callback_url,
                    now_ms
                ],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Jobs queued or running.
    pub fn active(&self) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db_err)
    }

    /// Jobs by state, for the gauges.
    pub fn counts(&self) -> Result<Vec<(String, u64)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .map_err(db_err)?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)
    }

    /// Takes the oldest queued job and marks it running (one statement: a cancel that comes
    /// first wins).
    pub fn take_next(&self, now_ms: i64) -> Result<Option<JobView>> {
        let id: Option<String> = self
            .conn
            .query_row(
                "UPDATE jobs SET state = 'running', started_ms = ?1, attempts = attempts + 1 \
                 WHERE seq = (SELECT seq FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1) \
                 RETURNING id",
                params![now_ms],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        match id {
            Some(id) => self.get(&id),
            None => Ok(None),
        }
    }

    /// Moves a job from one of `from` to `to` with what it ended with; false when it was in
    /// none of them (say, cancelled meanwhile).
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &self,
        id: &str,
        from: &[JobState],
        to: JobState,
        now_ms: i64,
        http_status: Option<u16>,
        result: Option<&serde_json::Value>,
        error: Option<&serde_json::Value>,
    ) -> Result<bool> {
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let n = self
            .conn
            .execute(
                "UPDATE jobs SET state = ?1, finished_ms = ?2, http_status = ?3, result = ?4, error = ?5 \
                 WHERE id = ?6 AND state IN (SELECT value FROM json_each(?7))",
                params![
                    to.as_str(),
                    now_ms,
                    http_status,
                    result.map(|v| v.to_string()),
                    error.map(|v| v.to_string()),
                    id,
                    serde_json::to_string(&from).expect("strings"),
                ],
            )
            .map_err(db_err)?;
        Ok(n == 1)
    }

    /// Puts a finished (failed, cancelled or interrupted) job back in the queue.
    pub fn requeue(&self, id: &str) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE jobs SET state = 'queued', started_ms = NULL, finished_ms = NULL, \
                 http_status = NULL, result = NULL, error = NULL, callback = NULL \
                 WHERE id = ?1 AND state IN ('failed', 'cancelled', 'interrupted')",
                params![id],
            )
            .map_err(db_err)?;
        Ok(n == 1)
    }

    /// Records how the callback went.
    pub fn set_callback(&self, id: &str, v: &serde_json::Value) -> Result<()> {
        self.conn
            .execute(
                "UPDATE jobs SET callback = ?1 WHERE id = ?2",
                params![v.to_string(), id],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// After a restart: running jobs of pure functions go back to the queue (they give the
    /// same output again); the others are marked interrupted. Returns (requeued, interrupted).
    pub fn recover(&self, now_ms: i64, interrupted: &serde_json::Value) -> Result<(u64, u64)> {
        let tx = self.conn.unchecked_transaction().map_err(db_err)?;
        let requeued = tx
            .execute(
                "UPDATE jobs SET state = 'queued', started_ms = NULL WHERE state = 'running' AND pure = 1",
                [],
            )
            .map_err(db_err)?;
        let stopped = tx
            .execute(
                "UPDATE jobs SET state = 'interrupted', finished_ms = ?1, error = ?2 \
                 WHERE state = 'running' AND pure = 0",
                params![now_ms, interrupted.to_string()],
            )
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok((requeued as u64, stopped as u64))
    }

    /// One job.
    pub fn get(&self, id: &str) -> Result<Option<JobView>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                params![id],
                row,
            )
            .optional()
            .map_err(db_err)
    }

    /// Jobs matching `q`, newest first, at most `q.limit`, before `q.before` (a `seq`).
    pub fn list(&self, q: &ListQuery) -> Result<Vec<JobView>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM jobs \
                 WHERE (?1 IS NULL OR function = ?1 OR function_cid = ?1) \
                 AND (?2 IS NULL OR state = ?2) \
                 AND (?3 IS NULL OR created_ms >= ?3) \
                 AND (?4 IS NULL OR created_ms < ?4) \
                 AND (?5 IS NULL OR seq < ?5) \
                 ORDER BY seq DESC LIMIT ?6"
            ))
            .map_err(db_err)?;
        let rows = st
            .query_map(
                params![
                    q.function,
                    q.state.map(|s| s.as_str()),
                    q.since_ms,
                    q.until_ms,
                    q.before,
                    q.limit as i64
                ],
                row,
            )
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)
    }

    /// Deletes finished jobs that finished before `older_than_ms`, then the oldest finished
    /// ones past the `keep` newest. Returns how many went.
    pub fn prune(&self, older_than_ms: i64, keep: u64) -> Result<u64> {
        const DONE: &str = "('done', 'failed', 'cancelled', 'interrupted')";
        let by_age = self
            .conn
            .execute(
                &format!("DELETE FROM jobs WHERE state IN {DONE} AND finished_ms < ?1"),
                params![older_than_ms],
            )
            .map_err(db_err)?;
        let by_count = self
            .conn
            .execute(
                &format!(
                    "DELETE FROM jobs WHERE state IN {DONE} AND seq NOT IN \
                     (SELECT seq FROM jobs WHERE state IN {DONE} ORDER BY seq DESC LIMIT ?1)"
                ),
                params![keep as i64],
            )
            .map_err(db_err)?;
        Ok((by_age + by_count) as u64)
    }
}

fn json_col(v: Option<String>) -> Option<serde_json::Value> {
    v.and_then(|s| serde_json::from_str(&s).ok())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobView> {
    let params: String = r.get(4)?;
    let state: String = r.get(8)?;
    Ok(JobView {
        id: r.get(0)?,
        function: r.get(1)?,
        function_cid: r.get(2)?,
        input_cid: r.get(3)?,
        params: serde_json::from_str(&params).unwrap_or_default(),
        use_cache: r.get(5)?,
        pure: r.get(6)?,
        callback_url: r.get(7)?,
        state: JobState::parse(&state).unwrap_or(JobState::Failed),
        created_ms: r.get(9)?,
        started_ms: r.get(10)?,
        finished_ms: r.get(11)?,
        attempts: r.get::<_, i64>(12)? as u32,
        http_status: r.get::<_, Option<i64>>(13)?.map(|s| s as u16),
        result: json_col(r.get(14)?),
        error: json_col(r.get(15)?),
        callback: json_col(r.get(16)?),
        seq: r.get(17)?,
    })
}
