-- Web UI sessions, so that signing out ends a session on every instance. The browser's cookie
-- holds a random session id; the store holds only its SHA-256. A session belongs either to an API
-- key of the store (by name: deleting the key deletes its sessions) or to a key of the
-- configuration file (by a reference the server derives with a key of its own; no key material).
CREATE TABLE ui_sessions (
    id_hash        TEXT COLLATE "C" PRIMARY KEY,  -- hex SHA-256 of the session id
    api_key_name   TEXT COLLATE "C" REFERENCES api_keys (name) ON DELETE CASCADE,
    config_key_ref TEXT COLLATE "C",
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    CHECK ((api_key_name IS NULL) <> (config_key_ref IS NULL))
);

-- The housekeeping purge looks for expired sessions; deleting a key looks for its sessions.
CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_at);
CREATE INDEX ui_sessions_by_api_key ON ui_sessions (api_key_name);
