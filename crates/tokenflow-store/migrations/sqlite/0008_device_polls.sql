-- The polling schedules of waiting device logins (RFC 8628): when a run's token endpoint is
-- polled next, at which interval, and which instance holds the claim to poll it (a lease, so
-- that across instances one polls a given run at a time). The device code is in the run's state.
CREATE TABLE device_polls (
    run_id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    interval_ms INTEGER NOT NULL,
    next_poll_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    claim_owner TEXT,
    claim_until INTEGER
);
CREATE INDEX device_polls_due ON device_polls (next_poll_at);
