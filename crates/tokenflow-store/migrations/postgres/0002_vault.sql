-- The token vault (SPEC §9). Tokens are sealed with the master key, bound to their entry by the
-- associated data "vault.<column>:<name>".
CREATE TABLE vault_entries (
    name                 TEXT COLLATE "C" PRIMARY KEY,
    server_id            TEXT   NOT NULL,
    access_token         BYTEA,
    refresh_token        BYTEA,
    expires_at           BIGINT,
    granted_scopes       TEXT,
    state                TEXT   NOT NULL CHECK (state IN ('ok', 'needs_login')),
    last_refresh_at      BIGINT,
    last_refresh_outcome TEXT,
    version              BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
