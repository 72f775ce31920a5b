-- tokenflow store, SQLite schema 1.
-- Timestamps are INTEGER unix milliseconds (UTC). BLOB columns marked "sealed" hold values
-- encrypted by the store (src/crypto.rs) with the associated data named next to them, so a
-- sealed value copied to another row does not decrypt. No secret is ever stored in clear.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL                       -- key_check: sealed, aad "meta.key_check"
) STRICT;

CREATE TABLE flows (
    id         TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    yaml       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (id, version)
) STRICT;

-- No foreign key to flows: the CLI runs flows from files that never enter the store.
CREATE TABLE runs (
    id              TEXT    PRIMARY KEY NOT NULL,
    flow_id         TEXT    NOT NULL,
    flow_version    INTEGER NOT NULL,
    status          TEXT    NOT NULL
        CHECK (status IN ('running', 'waiting', 'completed', 'failed', 'cancelled')),
    state           BLOB    NOT NULL,         -- sealed, aad "runs.state:<id>"
    browser_binding TEXT,
    started_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    ended_at        INTEGER
) STRICT;

-- list_runs is "newest first" with optional flow / status filters.
CREATE INDEX runs_by_start ON runs (started_at DESC, id DESC);
CREATE INDEX runs_by_flow ON runs (flow_id, started_at DESC, id DESC);
CREATE INDEX runs_by_status ON runs (status, started_at DESC, id DESC);

CREATE TABLE action_records (
    run_id TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL CHECK (seq >= 0),
    json   TEXT    NOT NULL,                  -- secrets already masked by the engine
    PRIMARY KEY (run_id, seq)
) STRICT;

-- Looked up by the SHA-256 of `state`; the raw state is never stored.
CREATE TABLE pending_authorizations (
    state_hash  TEXT    PRIMARY KEY NOT NULL, -- lowercase hex SHA-256 of the raw state
    run_id      TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    action      TEXT    NOT NULL,
    payload     BLOB    NOT NULL,             -- sealed, aad "pending.payload:<state_hash>"
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER                       -- set once, by whoever consumes it
) STRICT;

-- The expiry sweeper and cancel only look at unconsumed rows.
CREATE INDEX pending_unconsumed_by_expiry
    ON pending_authorizations (expires_at) WHERE consumed_at IS NULL;
CREATE INDEX pending_unconsumed_by_run
    ON pending_authorizations (run_id) WHERE consumed_at IS NULL;

CREATE TABLE oauth_servers (
    id            TEXT    PRIMARY KEY NOT NULL,
    spec_json     TEXT    NOT NULL,           -- without the secret
    client_secret BLOB,                       -- sealed, aad "oauth_servers.client_secret:<id>"
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    name       TEXT    PRIMARY KEY NOT NULL,
    hash       TEXT    NOT NULL UNIQUE,       -- hex SHA-256 of the key
    created_at INTEGER NOT NULL
) STRICT;

-- The primary key is the "exactly once" guarantee for scheduled firings across instances.
CREATE TABLE schedule_firings (
    flow_id    TEXT    NOT NULL,
    due        INTEGER NOT NULL,              -- unix seconds
    run_id     TEXT    NOT NULL,
    claimed_at INTEGER NOT NULL,
    PRIMARY KEY (flow_id, due)
) STRICT;
