-- Queue control: pause, global limits, sequences.

-- The sequence key (EnqueueOptions::sequence); NULL for most tasks. No CHECK
-- (the client refuses an empty key): adding one would scan the whole table
-- under an exclusive lock when migrating a large queue.
ALTER TABLE sitq_tasks ADD COLUMN sequence TEXT;

-- The claim asks, for a task with a sequence only, whether an earlier task of
-- its key is unfinished (or any is running): a probe into this index, which
-- holds only unfinished tasks that have a sequence, so tasks without one
-- cost nothing and finished history is never walked.
CREATE INDEX sitq_tasks_sequence ON sitq_tasks (sequence, id)
    WHERE sequence IS NOT NULL AND status IN ('pending', 'blocked', 'running', 'failed');

-- One row per queue that has settings; none for the others, so the claim of
-- a database without settings reads an empty table.
CREATE TABLE sitq_queues (
    queue       TEXT        PRIMARY KEY CHECK (queue <> ''),
    paused      BOOLEAN     NOT NULL DEFAULT false,
    -- At most this many tasks of the queue running (reserved ones included).
    concurrency INT         CHECK (concurrency >= 1),
    -- At most rate_count claims in any window of rate_period.
    rate_count  INT         CHECK (rate_count >= 1),
    rate_period BIGINT      CHECK (rate_period >= 1), -- microseconds
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((rate_count IS NULL) = (rate_period IS NULL))
);

-- The claim instants of rate-limited queues, for an exact sliding window;
-- each claim deletes those older than the window, so a queue holds at most
-- rate_count rows.
CREATE TABLE sitq_queue_claims (
    queue TEXT        NOT NULL,
    at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX sitq_queue_claims_at ON sitq_queue_claims (queue, at);
