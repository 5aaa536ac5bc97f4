-- Operations: the worker registry, when failed attempts started, and the
-- audit log of admin actions.

-- One row per live worker process, refreshed by its beat (about once a
-- second) and deleted at its clean stop, or by another worker's beat once
-- it has expired. Times from the server's clock.
CREATE TABLE sitq_workers (
    id              TEXT        PRIMARY KEY,
    host            TEXT        NOT NULL,
    pid             BIGINT      NOT NULL,
    version         TEXT        NOT NULL,
    -- JSON arrays of strings (serde_json): the queues it takes from (empty:
    -- every queue) and the task names it runs.
    queues          TEXT        NOT NULL,
    tasks           TEXT        NOT NULL,
    concurrency     INT         NOT NULL,
    running         INT         NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen       TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    -- Set by an admin's drain request; the worker reads it at its next beat.
    drain_requested BOOLEAN     NOT NULL DEFAULT false
);

-- When the failed attempt started (the task's started_at at the time).
-- Unknown (NULL) for rows written before this migration. No default: adding
-- it rewrites nothing.
ALTER TABLE sitq_failures ADD COLUMN started_at TIMESTAMPTZ;

-- Statistics count the failed attempts of the last minute and hour.
CREATE INDEX sitq_failures_failed_at ON sitq_failures (failed_at);

-- Admin actions, newest read first (by id).
CREATE TABLE sitq_audit (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor  TEXT        NOT NULL,
    action TEXT        NOT NULL,
    target TEXT        NOT NULL,
    detail TEXT
);

-- The producer's trace context (an opaque text, e.g. a W3C traceparent),
-- handed to the worker with the claim so an attempt's span links to the
-- enqueue that caused it. NULL for most tasks.
ALTER TABLE sitq_tasks ADD COLUMN trace_context TEXT;
