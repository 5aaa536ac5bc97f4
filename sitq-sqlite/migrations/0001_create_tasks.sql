-- The task table. Times are INTEGER unix microseconds, UTC.
--
-- AUTOINCREMENT so that an id is never handed out twice, even after pruning
-- deleted the highest ids: a stale TaskHandle must never see another task.
CREATE TABLE sitq_tasks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL CHECK (name <> ''),
    queue        TEXT    NOT NULL CHECK (queue <> ''),
    payload      BLOB    NOT NULL,
    -- TaskStatus::as_str
    status       TEXT    NOT NULL DEFAULT 'pending',
    priority     INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    created_at   INTEGER NOT NULL,
    run_at       INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    lease_until  INTEGER,
    worker_id    TEXT,
    -- FailureKind::as_str of the latest failed attempt
    error_kind   TEXT,
    error        TEXT,
    result       BLOB
);

-- The claim query walks this index in order and stops after LIMIT rows, so
-- finished rows (however many) never slow it down: they are not in it.
CREATE INDEX sitq_tasks_claim ON sitq_tasks (priority DESC, run_at, id)
    WHERE status = 'pending';

-- next_run_at: the earliest pending run_at is the first entry.
CREATE INDEX sitq_tasks_pending_run_at ON sitq_tasks (run_at)
    WHERE status = 'pending';

-- recover_expired looks only at running rows whose lease ran out.
CREATE INDEX sitq_tasks_lease ON sitq_tasks (lease_until)
    WHERE status = 'running';

-- prune deletes finished rows by age.
CREATE INDEX sitq_tasks_finished ON sitq_tasks (finished_at)
    WHERE finished_at IS NOT NULL;
