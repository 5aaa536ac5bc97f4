-- Dependencies between tasks, result inputs and workflows (issue 9).
-- Constant defaults: SQLite adds the columns without rewriting the table,
-- and tasks without dependencies never write them.

-- The workflow a task belongs to; NULL for most tasks.
ALTER TABLE sitq_tasks ADD COLUMN workflow_id INTEGER;
-- While `blocked`: how many distinct dependencies are not yet resolved (not
-- succeeded; with after_finished: not finished).
ALTER TABLE sitq_tasks ADD COLUMN deps_pending INTEGER NOT NULL DEFAULT 0;
-- Run once every dependency finished, whatever its outcome.
ALTER TABLE sitq_tasks ADD COLUMN after_finished INTEGER NOT NULL DEFAULT 0;
-- InputMode::as_i16: 0 none, 1 one result, 2 a list of results.
ALTER TABLE sitq_tasks ADD COLUMN input_mode INTEGER NOT NULL DEFAULT 0;
-- Some task depends on this one (set by the dependent's enqueue): only such
-- rows look for dependents when they finish.
ALTER TABLE sitq_tasks ADD COLUMN has_dependents INTEGER NOT NULL DEFAULT 0;
-- Its dependents have been resolved for its current finish (a retry clears it).
ALTER TABLE sitq_tasks ADD COLUMN dependents_resolved INTEGER NOT NULL DEFAULT 0;

-- One row per dependency edge, in the order given (inputs first); a
-- dependency listed twice has two rows, counted once.
CREATE TABLE sitq_deps (
    task_id INTEGER NOT NULL,
    ord     INTEGER NOT NULL,
    dep_id  INTEGER NOT NULL,
    input   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, ord)
) WITHOUT ROWID;

-- A finishing task finds its dependents (dep_id), and how many distinct
-- finishing dependencies a dependent has (dep_id, task_id), by probes.
CREATE INDEX sitq_deps_dep ON sitq_deps (dep_id, task_id);

CREATE TABLE sitq_workflows (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    final_task INTEGER NOT NULL
);

CREATE INDEX sitq_tasks_workflow ON sitq_tasks (workflow_id)
    WHERE workflow_id IS NOT NULL;

-- Finished tasks whose dependents are not resolved yet: resolution runs in
-- the transaction that finishes them, so this holds only rows whose
-- resolution failed; recover_expired sweeps it.
CREATE INDEX sitq_tasks_unresolved ON sitq_tasks (id)
    WHERE has_dependents = 1 AND dependents_resolved = 0
      AND status IN ('succeeded', 'failed', 'cancelled');
