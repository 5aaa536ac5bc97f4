-- Cancel requests and the failure history (cancel, retry).

-- A cancel request: set when someone cancels the task (at once for a task
-- that had not started; for a running one, until its worker stops it).
-- Cleared by a retry. Nullable columns without defaults: adding them
-- rewrites nothing.
ALTER TABLE sitq_tasks
    ADD COLUMN cancel_requested_at TIMESTAMPTZ,
    ADD COLUMN cancelled_by TEXT,
    ADD COLUMN cancel_reason TEXT;

-- Every failed attempt, across retries: written only on failure paths.
-- `seq` orders them (attempt numbers start again after a retry).
CREATE TABLE sitq_failures (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id   BIGINT      NOT NULL,
    attempt   INT         NOT NULL,
    -- FailureKind::as_str
    kind      TEXT        NOT NULL,
    message   TEXT        NOT NULL,
    worker_id TEXT,
    failed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX sitq_failures_task ON sitq_failures (task_id, seq);
