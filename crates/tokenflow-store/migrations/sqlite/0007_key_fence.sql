-- The key fence of a master key rotation (docs/operations.md, "Master key rotation"). Every
-- sealed value begins with its format and the id of the key that sealed it (11 bytes, see
-- src/crypto.rs). While meta holds a 'key_fence' row, a sealed value written (inserted, or
-- changed by an update) that does not begin with it is refused: an instance still running with
-- the key being rotated out cannot write a value the rotation would miss. Without the row (no
-- rotation ever ran) nothing is checked.

CREATE TRIGGER runs_key_fence_insert BEFORE INSERT ON runs
WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'key_fence') AND (
    (NEW.state IS NOT NULL
        AND substr(NEW.state, 1, 11) IS NOT (SELECT value FROM meta WHERE key = 'key_fence')))
BEGIN
    SELECT RAISE(ABORT, 'tokenflow key fence: a value sealed with a master key that was rotated out');
END;

CREATE TRIGGER runs_key_fence_update BEFORE UPDATE OF state ON runs
WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'key_fence') AND (
    (NEW.state IS NOT NULL AND NEW.state IS NOT OLD.state
        AND substr(NEW.state, 1, 11) IS NOT (SELECT value FROM meta WHERE key = 'key_fence')))
BEGIN
    SELECT RAISE(ABORT, 'tokenflow key fence: a value sealed with a master key that was rotated out');
END;

CREATE TRIGGER pending_authorizations_key_fence_insert BEFORE INSERT ON pending_authorizations
WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'key_fence') AND (
    (NEW.payload IS NOT NULL
        AND substr(NEW.payload, 1, 11) IS NOT (SELECT value FROM meta WHERE key = 'key_fence')))
BEGIN
    SELECT RAISE(ABORT, 'tokenflow key fence: a value sealed with a master key that was rotated out');
END;

CREATE TRIGGER pending_authorizations_key_fence_update BEFORE UPDATE OF payload ON pending_authorizations
WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'key_fence') AND (
    (NEW.payload IS NOT NULL AND NEW.payload IS NOT OLD.payload
        AND substr(NEW.payload, 1, 11) IS NOT (SELECT value FROM meta WHERE key = 'key_fence')))
BEGIN
    SELECT RAISE(ABORT, 'tokenflow key fence: a value sealed with a master key that was rotated out');
END;

CREATE TRIGGER oauth_servers_key_fence_insert BEFORE INSERT ON oauth_servers
WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'key_fence') AND (
    (NEW.client_secret IS NOT NULL
        AND substr(NEW.client_secret, 1, 11) IS NOT (SELECT value FROM meta WHERE key = 'key_fence'))
    OR (NEW.private_key IS NOT NULL
        AND substr(NEW.private_key, 1, 11) IS NOT (SELECT value FROM meta WHERE key = 'key_fence')))
BEGIN
    SELECT RAISE(ABORT, 'tokenflow key fence: a value sealed with a master key that was rotated out');
END;

CREATE TRIGGER oauth_servers_key_fence_update BEFORE UPDATE OF client_secret, private_key ON oauth_servers
WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'key_fence') AND (
    (NEW.client_secret IS NOT NULL AND NEW.client_secret IS NOT OLD.client_secret
        AND substr(NEW.client_secret, 1, 11) IS NOT (SELECT value FROM meta WHERE key = 'key_fence'))
    OR (NEW.private_key IS NOT NULL AND NEW.private_key IS NOT OLD.private_key
        AND substr(NEW.private_key, 1, 11) IS NOT (SELECT value FROM meta WHERE key = 'key_fence')))
BEGIN
    SELECT RAISE(ABORT, 'tokenflow key fence: a value sealed with a master key that was rotated out');
END;

CREATE TRIGGER vault_entries_key_fence_insert BEFORE INSERT ON vault_entries
WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'key_fence') AND (
    (NEW.access_token IS NOT NULL
        AND substr(NEW.access_token, 1, 11) IS NOT (SELECT value FROM meta WHERE key = 'key_fence'))
    OR (NEW.refresh_token IS NOT NULL
        AND substr(NEW.refresh_token, 1, 11) IS NOT (SELECT value FROM meta WHERE key = 'key_fence')))
BEGIN
    SELECT RAISE(ABORT, 'tokenflow key fence: a value sealed with a master key that was rotated out');
END;

CREATE TRIGGER vault_entries_key_fence_update BEFORE UPDATE OF access_token, refresh_token ON vault_entries
WHEN EXISTS (SELECT 1 FROM meta WHERE key = 'key_fence') AND (
    (NEW.access_token IS NOT NULL AND NEW.access_token IS NOT OLD.access_token
        AND substr(NEW.access_token, 1, 11) IS NOT (SELECT value FROM meta WHERE key = 'key_fence'))
    OR (NEW.refresh_token IS NOT NULL AND NEW.refresh_token IS NOT OLD.refresh_token
        AND substr(NEW.refresh_token, 1, 11) IS NOT (SELECT value FROM meta WHERE key = 'key_fence')))
BEGIN
    SELECT RAISE(ABORT, 'tokenflow key fence: a value sealed with a master key that was rotated out');
END;
