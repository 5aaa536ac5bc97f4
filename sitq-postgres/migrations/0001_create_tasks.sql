-- The one table of sitq on PostgreSQL. Every time is taken from the server's
-- clock (now()) except run_at at enqueue, which the producer computed.
CREATE TABLE sitq_tasks (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT        NOT NULL,
    queue        TEXT        NOT NULL,
    payload      BYTEA       NOT NULL,
    -- TaskStatus::as_str
    status       TEXT        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'blocked', 'running', 'succeeded', 'failed', 'cancelled')),
    priority     INT         NOT NULL DEFAULT 0,
    attempts     INT         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts INT         NOT NULL CHECK (max_attempts >= 1),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    run_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    lease_until  TIMESTAMPTZ,
    worker_id    TEXT,
    -- FailureKind::as_str of the latest failed attempt, with its message
    error_kind   TEXT,
    error        TEXT,
    result       BYTEA
);

-- Claims walk this index in claim order and stop after LIMIT rows.
CREATE INDEX sitq_tasks_ready ON sitq_tasks (priority DESC, run_at, id)
    WHERE status = 'pending';

-- Lease recovery looks only at running tasks.
CREATE INDEX sitq_tasks_leases ON sitq_tasks (lease_until)
    WHERE status = 'running';

-- Pruning deletes finished tasks by age.
CREATE INDEX sitq_tasks_finished ON sitq_tasks (finished_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');
