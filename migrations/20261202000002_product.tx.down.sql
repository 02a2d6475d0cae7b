DROP INDEX IF EXISTS notification_user_idx;
ALTER TABLE package DROP COLUMN IF EXISTS retired_at;
