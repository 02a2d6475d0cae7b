-- The timetable: classes that members book with a pass. A class counts its
-- live bookings in booked, which the CHECK keeps within capacity: taking a
-- seat is one conditional UPDATE, so concurrent bookings of the last seats
-- cannot overbook. A member holds at most one live booking of a class.
CREATE TABLE class (
    id           bigserial PRIMARY KEY,
    title        text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    trainer      text        NOT NULL DEFAULT '' CHECK (length(trainer) <= 100),
    place        text        NOT NULL DEFAULT '' CHECK (length(place) <= 100),
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz NOT NULL,
    capacity     integer     NOT NULL CHECK (capacity BETWEEN 1 AND 1000),
    booked       integer     NOT NULL DEFAULT 0,
    status       text        NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'CANCELLED')),
    series       uuid,       -- the weekly repeats made together
    cancelled_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    modified_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at > started_at),
    CHECK (booked BETWEEN 0 AND capacity)
);
CREATE INDEX class_started_idx ON class (started_at);

ALTER TABLE booking ADD COLUMN class_id bigint REFERENCES class (id);
CREATE UNIQUE INDEX booking_one_per_member_idx ON booking (class_id, user_id) WHERE status <> 'CANCELLED' AND class_id IS NOT NULL;
CREATE INDEX booking_class_idx ON booking (class_id) WHERE class_id IS NOT NULL;
-- use-passes' first step completes the bookings of classes that ended.
CREATE INDEX booking_class_ready_idx ON booking (ended_at) WHERE status = 'READY' AND class_id IS NOT NULL;
-- A pass's uses booked and not yet deducted are counted under its row lock:
-- READY ones here, COMPLETED ones by booking_unused_pass_idx.
CREATE INDEX booking_pass_ready_idx ON booking (pass_id) WHERE status = 'READY';

ALTER TABLE notification DROP CONSTRAINT notification_event_check;
ALTER TABLE notification ADD CONSTRAINT notification_event_check CHECK (event IN ('BEFORE_CLASS', 'BEFORE_EXPIRY', 'CLASS_CANCELLED'));
