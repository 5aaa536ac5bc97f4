-- Cron schedules and the ticks they fired. Times come from the workers'
-- clocks (schedules run on them), not from now().

-- One row per schedule name, upserted by every worker that runs it.
CREATE TABLE sitq_schedules (
    name          TEXT        PRIMARY KEY CHECK (name <> ''),
    task          TEXT        NOT NULL,
    queue         TEXT        NOT NULL,
    expression    TEXT        NOT NULL,
    zone          TEXT        NOT NULL,
    catch_up      TEXT        NOT NULL CHECK (catch_up IN ('latest', 'none', 'all')),
    -- when this expression and zone were first registered
    defined_at    TIMESTAMPTZ NOT NULL,
    last_fire     TIMESTAMPTZ,
    next_fire     TIMESTAMPTZ,
    last_seen     TIMESTAMPTZ NOT NULL,
    -- ticks before this were pruned from sitq_schedule_ticks: never fired again
    pruned_before TIMESTAMPTZ
);

-- The key that makes a tick fire once across every worker: inserted in the
-- transaction that enqueues the tick's task. Pruned by age on each fire.
CREATE TABLE sitq_schedule_ticks (
    schedule TEXT        NOT NULL,
    tick     TIMESTAMPTZ NOT NULL,
    task_id  BIGINT,
    PRIMARY KEY (schedule, tick)
);
