-- The token vault (SPEC §9). Tokens are sealed with the master key, bound to their entry by the
-- associated data "vault.<column>:<name>".
CREATE TABLE vault_entries (
    name                 TEXT    NOT NULL PRIMARY KEY,
    server_id            TEXT    NOT NULL,
    access_token         BLOB,
    refresh_token        BLOB,
    expires_at           INTEGER,
    granted_scopes       TEXT,
    state                TEXT    NOT NULL CHECK (state IN ('ok', 'needs_login')),
    last_refresh_at      INTEGER,
    last_refresh_outcome TEXT,
    version              INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
) STRICT;
