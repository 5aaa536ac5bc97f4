-- How often each task snoozed (Context::snooze): a snooze runs the task
-- again later without spending an attempt, and this counts it. A constant
-- default: SQLite adds the column without rewriting the table.
ALTER TABLE sitq_tasks ADD COLUMN snoozes INTEGER NOT NULL DEFAULT 0;
