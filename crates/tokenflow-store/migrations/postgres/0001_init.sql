-- tokenflow store, PostgreSQL schema 1: the same tables as migrations/sqlite/0001_init.sql.
-- Timestamps are BIGINT unix milliseconds (UTC). BYTEA columns marked "sealed" hold values
-- encrypted by the store (src/crypto.rs) with the associated data named next to them, so a
-- sealed value copied to another row does not decrypt. No secret is ever stored in clear.
-- Key and ordering columns use COLLATE "C": byte order, as SQLite's BINARY, whatever the
-- database's default collation, so every list comes back in the same order on both backends.

CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL                      -- key_check: sealed, aad "meta.key_check"
);

CREATE TABLE flows (
    id         TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL CHECK (version >= 1),
    yaml       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (id, version)
);

-- No foreign key to flows: the CLI runs flows from files that never enter the store.
CREATE TABLE runs (
    id              TEXT COLLATE "C" PRIMARY KEY,
    flow_id         TEXT COLLATE "C" NOT NULL,
    flow_version    BIGINT NOT NULL,
    status          TEXT   NOT NULL
        CHECK (status IN ('running', 'waiting', 'completed', 'failed', 'cancelled')),
    state           BYTEA  NOT NULL,          -- sealed, aad "runs.state:<id>"
    browser_binding TEXT,
    started_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    ended_at        BIGINT
);

-- list_runs is "newest first" with optional flow / status filters.
CREATE INDEX runs_by_start ON runs (started_at DESC, id DESC);
CREATE INDEX runs_by_flow ON runs (flow_id, started_at DESC, id DESC);
CREATE INDEX runs_by_status ON runs (status, started_at DESC, id DESC);

CREATE TABLE action_records (
    run_id TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    BIGINT NOT NULL CHECK (seq >= 0),
    json   TEXT   NOT NULL,                   -- secrets already masked by the engine
    PRIMARY KEY (run_id, seq)
);

-- Looked up by the SHA-256 of `state`; the raw state is never stored.
CREATE TABLE pending_authorizations (
    state_hash  TEXT COLLATE "C" PRIMARY KEY, -- lowercase hex SHA-256 of the raw state
    run_id      TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    action      TEXT   NOT NULL,
    payload     BYTEA  NOT NULL,              -- sealed, aad "pending.payload:<state_hash>"
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    consumed_at BIGINT                        -- set once, by whoever consumes it
);

-- The expiry sweeper and cancel only look at unconsumed rows.
CREATE INDEX pending_unconsumed_by_expiry
    ON pending_authorizations (expires_at) WHERE consumed_at IS NULL;
CREATE INDEX pending_unconsumed_by_run
    ON pending_authorizations (run_id) WHERE consumed_at IS NULL;

CREATE TABLE oauth_servers (
    id            TEXT COLLATE "C" PRIMARY KEY,
    spec_json     TEXT   NOT NULL,            -- without the secret
    client_secret BYTEA,                      -- sealed, aad "oauth_servers.client_secret:<id>"
    updated_at    BIGINT NOT NULL
);

CREATE TABLE api_keys (
    name       TEXT COLLATE "C" PRIMARY KEY,
    hash       TEXT COLLATE "C" NOT NULL UNIQUE, -- hex SHA-256 of the key
    created_at BIGINT NOT NULL
);

-- The primary key is the "exactly once" guarantee for scheduled firings across instances.
CREATE TABLE schedule_firings (
    flow_id    TEXT COLLATE "C" NOT NULL,
    due        BIGINT NOT NULL,               -- unix seconds
    run_id     TEXT   NOT NULL,
    claimed_at BIGINT NOT NULL,
    PRIMARY KEY (flow_id, due)
);
