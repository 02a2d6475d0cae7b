-- Web across replicas (DESIGN §9): sessions a logout (or a password or role
-- change) ends everywhere, and idempotency keys purged by age.

-- A session cookie names its user's epoch; bumping the epoch ends every
-- session of the user. Logout bumps it; so does any change of password,
-- role or status.
ALTER TABLE users ADD COLUMN session_epoch integer NOT NULL DEFAULT 0;

--bun:split

CREATE FUNCTION users_bump_session_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.password_hash IS DISTINCT FROM OLD.password_hash OR NEW.role IS DISTINCT FROM OLD.role
       OR NEW.status IS DISTINCT FROM OLD.status THEN
        NEW.session_epoch := OLD.session_epoch + 1;
    END IF;
    RETURN NEW;
END
$$;

--bun:split

CREATE TRIGGER users_session_epoch BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION users_bump_session_epoch();

--bun:split

CREATE INDEX idempotency_key_created_idx ON idempotency_key (created_at);
