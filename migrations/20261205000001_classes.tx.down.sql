DELETE FROM notification WHERE event = 'CLASS_CANCELLED';
ALTER TABLE notification DROP CONSTRAINT notification_event_check;
ALTER TABLE notification ADD CONSTRAINT notification_event_check CHECK (event IN ('BEFORE_CLASS', 'BEFORE_EXPIRY'));
DROP INDEX booking_pass_ready_idx;
DROP INDEX booking_class_ready_idx;
DROP INDEX booking_class_idx;
DROP INDEX booking_one_per_member_idx;
ALTER TABLE booking DROP COLUMN class_id;
DROP TABLE class;
