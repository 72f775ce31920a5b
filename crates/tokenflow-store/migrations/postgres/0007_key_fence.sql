-- The key fence of a master key rotation (docs/operations.md, "Master key rotation"). Every
-- sealed value begins with its format and the id of the key that sealed it (11 bytes, see
-- src/crypto.rs). While meta holds a 'key_fence' row, a sealed value written (inserted, or
-- changed by an update) that does not begin with it is refused: an instance still running with
-- the key being rotated out cannot write a value the rotation would miss. Without the row (no
-- rotation ever ran) nothing is checked.
--
-- Each check takes a shared transaction-level advisory lock; the rotation sets the fence under
-- the exclusive one, so the fence is set only once every transaction that passed the old check
-- has ended, and every later check sees it.
CREATE FUNCTION tokenflow_key_fence_check(sealed bytea) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    fence bytea;
BEGIN
    IF sealed IS NULL THEN
        RETURN;
    END IF;
    -- The key is the ASCII of "tokenfen"; src/postgres/rotation.rs takes it exclusively.
    PERFORM pg_advisory_xact_lock_shared(8390042714202596718);
    SELECT value INTO fence FROM meta WHERE key = 'key_fence';
    IF fence IS NOT NULL AND substring(sealed FROM 1 FOR 11) IS DISTINCT FROM fence THEN
        RAISE EXCEPTION 'tokenflow key fence: a value sealed with a master key that was rotated out';
    END IF;
END
$$;

CREATE FUNCTION runs_key_fence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        PERFORM tokenflow_key_fence_check(NEW.state);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER runs_key_fence BEFORE INSERT OR UPDATE OF state ON runs
    FOR EACH ROW EXECUTE FUNCTION runs_key_fence();

CREATE FUNCTION pending_authorizations_key_fence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.payload IS DISTINCT FROM OLD.payload THEN
        PERFORM tokenflow_key_fence_check(NEW.payload);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER pending_authorizations_key_fence BEFORE INSERT OR UPDATE OF payload ON pending_authorizations
    FOR EACH ROW EXECUTE FUNCTION pending_authorizations_key_fence();

CREATE FUNCTION oauth_servers_key_fence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.client_secret IS DISTINCT FROM OLD.client_secret THEN
        PERFORM tokenflow_key_fence_check(NEW.client_secret);
    END IF;
    IF TG_OP = 'INSERT' OR NEW.private_key IS DISTINCT FROM OLD.private_key THEN
        PERFORM tokenflow_key_fence_check(NEW.private_key);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER oauth_servers_key_fence BEFORE INSERT OR UPDATE OF client_secret, private_key ON oauth_servers
    FOR EACH ROW EXECUTE FUNCTION oauth_servers_key_fence();

CREATE FUNCTION vault_entries_key_fence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.access_token IS DISTINCT FROM OLD.access_token THEN
        PERFORM tokenflow_key_fence_check(NEW.access_token);
    END IF;
    IF TG_OP = 'INSERT' OR NEW.refresh_token IS DISTINCT FROM OLD.refresh_token THEN
        PERFORM tokenflow_key_fence_check(NEW.refresh_token);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER vault_entries_key_fence BEFORE INSERT OR UPDATE OF access_token, refresh_token ON vault_entries
    FOR EACH ROW EXECUTE FUNCTION vault_entries_key_fence();
