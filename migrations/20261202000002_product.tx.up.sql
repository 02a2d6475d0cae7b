-- The gym's product surface (issue 18): a package can be retired (no new
-- grants; its passes keep working), and members are listed and searched.
ALTER TABLE package ADD COLUMN retired_at timestamptz;
CREATE INDEX notification_user_idx ON notification (user_id, id DESC);
