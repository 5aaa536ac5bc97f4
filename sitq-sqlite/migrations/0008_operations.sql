-- Operations: the worker registry, attempt start times in the failure
-- history, the audit log, and the trace context a task carries.

-- One row per live worker process, refreshed by its beat (every second) and
-- deleted by its clean stop, or by another worker's beat once expired.
-- `queues` and `tasks` are JSON arrays of strings.
CREATE TABLE sitq_workers (
    id              TEXT    PRIMARY KEY,
    host            TEXT    NOT NULL,
    pid             INTEGER NOT NULL,
    version         TEXT    NOT NULL,
    queues          TEXT    NOT NULL,
    tasks           TEXT    NOT NULL,
    concurrency     INTEGER NOT NULL,
    running         INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    -- Set by `drain_worker`; the worker's next beat reads it.
    drain_requested BOOLEAN NOT NULL DEFAULT 0
);

-- When the failed attempt started (NULL for failures stored before this
-- version, and for an attempt that never started).
ALTER TABLE sitq_failures ADD COLUMN started_at INTEGER;

-- stats: failed attempts in the last minute and hour.
CREATE INDEX sitq_failures_failed_at ON sitq_failures (failed_at);

-- Admin actions, newest first by id (AUTOINCREMENT: ids never reused).
CREATE TABLE sitq_audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT
);

-- The producer's trace context (an opaque text, e.g. a W3C traceparent),
-- handed to the worker with the claim so an attempt's span links to the
-- enqueue that caused it. NULL for most tasks.
ALTER TABLE sitq_tasks ADD COLUMN trace_context TEXT;
