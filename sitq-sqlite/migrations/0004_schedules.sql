-- Cron schedules and the ticks they fired. Times are INTEGER unix
-- microseconds, UTC, from the workers' clocks (schedules run on them).

-- One row per schedule name, upserted by every worker that runs it.
CREATE TABLE sitq_schedules (
    name          TEXT    PRIMARY KEY CHECK (name <> ''),
    task          TEXT    NOT NULL,
    queue         TEXT    NOT NULL,
    expression    TEXT    NOT NULL,
    zone          TEXT    NOT NULL,
    -- CatchUp::as_str
    catch_up      TEXT    NOT NULL,
    -- when this expression and zone were first registered
    defined_at    INTEGER NOT NULL,
    last_fire     INTEGER,
    next_fire     INTEGER,
    last_seen     INTEGER NOT NULL,
    -- ticks before this were pruned from sitq_schedule_ticks: never fired again
    pruned_before INTEGER
);

-- The key that makes a tick fire once across every worker: inserted in the
-- transaction that enqueues the tick's task. Pruned by age on each fire.
CREATE TABLE sitq_schedule_ticks (
    schedule TEXT    NOT NULL,
    tick     INTEGER NOT NULL,
    task_id  INTEGER NOT NULL,
    PRIMARY KEY (schedule, tick)
) WITHOUT ROWID;
