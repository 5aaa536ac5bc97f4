-- Unique tasks. A row holds its key while `unique_key` is set: from its
-- enqueue until it fails or is cancelled (or succeeds, when it has no
-- window). `unique_for` is the window, in microseconds, during which a
-- succeeded task still blocks its key; the next enqueue of the key releases
-- a holder whose window ran out. Keys are scoped by task name.
ALTER TABLE sitq_tasks ADD COLUMN unique_key TEXT;
ALTER TABLE sitq_tasks ADD COLUMN unique_for BIGINT CHECK (unique_for > 0);

-- One holder per (name, key), whoever enqueues: INSERT ... ON CONFLICT on it.
-- Rows without a key are not in the index, so tasks without one pay nothing.
CREATE UNIQUE INDEX sitq_tasks_unique ON sitq_tasks (name, unique_key)
    WHERE unique_key IS NOT NULL;
