DROP INDEX IF EXISTS idempotency_key_created_idx;
DROP TRIGGER IF EXISTS users_session_epoch ON users;
DROP FUNCTION IF EXISTS users_bump_session_epoch();
ALTER TABLE users DROP COLUMN IF EXISTS session_epoch;
