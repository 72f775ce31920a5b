-- Retention (docs/operations.md, "Retention"): the sweeper deletes ended runs that ended before
-- `max_age`, oldest first, and those beyond the newest `max_runs_per_flow` of their flow; both
-- are found through these indexes of ended runs only. Starting a run counts the runs of its flow
-- that wait for a sign-in (`max_waiting_runs_per_flow`) through the last one.
CREATE INDEX runs_ended_by_age ON runs (ended_at, id)
    WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX runs_ended_by_flow ON runs (flow_id, ended_at DESC, id DESC)
    WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX runs_waiting_by_flow ON runs (flow_id) WHERE status = 'waiting';
-- Deleting a run looks up its pending logins (the deletes of retention, and the foreign key's
-- cascade); consumed ones were not indexed by run.
CREATE INDEX pending_by_run ON pending_authorizations (run_id);
