-- The fencing token of a claim: how many times the task was claimed. Every
-- claim raises it by one and nothing lowers it, unlike `attempts`, which a
-- snooze, a released or recovered reservation and an admin retry give back.
-- Heartbeats, starts, releases and completions match on it, so a claim from
-- before any of those can no longer touch the task's current run.
ALTER TABLE sitq_tasks ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
