-- Unique tasks. A row holds its key while `unique_key` is set: from its
-- enqueue until it fails or is cancelled (or succeeds, when it has no
-- window). `unique_for` is the window, in microseconds, during which a
-- succeeded task still blocks its key; the next enqueue of the key releases
-- a holder whose window ran out. Keys are scoped by task name.
ALTER TABLE sitq_tasks ADD COLUMN unique_key TEXT;
ALTER TABLE sitq_tasks ADD COLUMN unique_for INTEGER;

-- One holder per (name, key), whoever enqueues; rows without a key are not
-- in the index, so tasks without one pay nothing for it.
CREATE UNIQUE INDEX sitq_tasks_unique ON sitq_tasks (name, unique_key)
    WHERE unique_key IS NOT NULL;
