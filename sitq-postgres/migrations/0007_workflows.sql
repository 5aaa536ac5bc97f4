-- Dependencies between tasks, results passed along them, and workflows.
-- Every new sitq_tasks column has a constant default (or none), so adding
-- them rewrites nothing.

ALTER TABLE sitq_tasks
    -- The workflow the task belongs to (sitq_workflows.id), if any.
    ADD COLUMN workflow_id BIGINT,
    -- While blocked: how many distinct dependencies are not resolved yet (not
    -- succeeded; with after_finished: not finished).
    ADD COLUMN deps_pending INT NOT NULL DEFAULT 0,
    -- Run once every dependency finished, whatever its outcome.
    ADD COLUMN after_finished BOOLEAN NOT NULL DEFAULT false,
    -- InputMode::as_i16: how the dependencies' results are passed (0: not).
    ADD COLUMN input_mode SMALLINT NOT NULL DEFAULT 0,
    -- Some task depends on it (set, under its row lock, by the dependent's
    -- enqueue): only such rows look for dependents when they finish.
    ADD COLUMN has_dependents BOOLEAN NOT NULL DEFAULT false,
    -- Its dependents have been resolved for its current finish.
    ADD COLUMN dependents_resolved BOOLEAN NOT NULL DEFAULT false;

-- One row per dependency edge, in the order given (inputs first); a
-- dependency listed twice has two rows and counts once.
CREATE TABLE sitq_deps (
    task_id BIGINT  NOT NULL,
    ord     INT     NOT NULL,
    dep_id  BIGINT  NOT NULL,
    -- Whether the dependency's result is passed to the task.
    input   BOOLEAN NOT NULL,
    PRIMARY KEY (task_id, ord)
);

-- A finishing task finds its dependents through this.
CREATE INDEX sitq_deps_dep ON sitq_deps (dep_id);

CREATE TABLE sitq_workflows (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The last task added: what waiting for the workflow waits for.
    final_task BIGINT      NOT NULL
);

-- queue.workflow(id) lists its tasks; tasks of no workflow are not indexed.
CREATE INDEX sitq_tasks_workflow ON sitq_tasks (workflow_id)
    WHERE workflow_id IS NOT NULL;

-- Finished tasks whose dependents are not resolved yet: normally none, or a
-- few for the instant between a completion and its follow-up statement.
-- Lease recovery sweeps them (after a crash in that instant).
CREATE INDEX sitq_tasks_unresolved ON sitq_tasks (id)
    WHERE has_dependents AND NOT dependents_resolved
      AND status IN ('succeeded', 'failed', 'cancelled');

-- Prune looks at finished tasks with dependents apart (locking them first,
-- so it cannot race the enqueue of a new dependent); this finds them without
-- reading the rest.
CREATE INDEX sitq_tasks_depended ON sitq_tasks (finished_at)
    WHERE has_dependents AND finished_at IS NOT NULL;
