-- passbatch schema: the PT domain (DESIGN §5) and the Spring-Batch-style job
-- repository (DESIGN §3). Column names are a contract; see README.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

--bun:split

CREATE TABLE package (
    id           bigserial PRIMARY KEY,
    name         text        NOT NULL CHECK (name <> ''),
    count        integer     CHECK (count > 0),          -- null: unlimited uses
    period_days  integer     CHECK (period_days > 0),    -- null: no end
    created_at   timestamptz NOT NULL DEFAULT now(),
    modified_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    name          text        NOT NULL,
    email         text        NOT NULL UNIQUE,
    phone         text        NOT NULL DEFAULT '',
    password_hash text        NOT NULL DEFAULT '',
    role          text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    status        text        NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'INACTIVE')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    modified_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_group (
    id          bigserial PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    modified_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_group_mapping (
    user_group_id bigint      NOT NULL REFERENCES user_group (id) ON DELETE CASCADE,
    user_id       bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    modified_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_group_id, user_id)
);
CREATE INDEX user_group_mapping_user_idx ON user_group_mapping (user_id);

CREATE TABLE bulk_pass (
    id            bigserial PRIMARY KEY,
    package_id    bigint      NOT NULL REFERENCES package (id),
    user_group_id bigint      NOT NULL REFERENCES user_group (id),
    status        text        NOT NULL DEFAULT 'READY' CHECK (status IN ('READY', 'COMPLETED')),
    count         integer     CHECK (count > 0),          -- null: unlimited uses
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,                            -- null: no end
    created_at    timestamptz NOT NULL DEFAULT now(),
    modified_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at IS NULL OR ended_at > started_at)
);
-- add-passes: READY bulk passes whose start has come.
CREATE INDEX bulk_pass_ready_idx ON bulk_pass (started_at, id) WHERE status = 'READY';

CREATE TABLE pass (
    id              bigserial PRIMARY KEY,
    package_id      bigint      NOT NULL REFERENCES package (id),
    user_id         bigint      NOT NULL REFERENCES users (id),
    bulk_pass_id    bigint      REFERENCES bulk_pass (id), -- null: a single grant
    status          text        NOT NULL DEFAULT 'READY' CHECK (status IN ('READY', 'PROGRESSED', 'EXPIRED')),
    remaining_count integer     CHECK (remaining_count >= 0), -- null: unlimited
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,                              -- null: no end
    expired_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pass_bulk_pass_user_key UNIQUE (bulk_pass_id, user_id),
    CHECK (ended_at IS NULL OR ended_at > started_at),
    CHECK ((status = 'EXPIRED') = (expired_at IS NOT NULL))
);
-- a user's passes (pages, API).
CREATE INDEX pass_user_idx ON pass (user_id, id);
-- expire-passes step 1: keyset over id among PROGRESSED passes.
CREATE INDEX pass_progressed_idx ON pass (id) WHERE status = 'PROGRESSED';
-- expire-passes step 2: keyset over id among READY passes.
CREATE INDEX pass_ready_idx ON pass (id) WHERE status = 'READY';
-- notify-before-expiry: PROGRESSED passes ending inside a window.
CREATE INDEX pass_progressed_ended_at_idx ON pass (ended_at) WHERE status = 'PROGRESSED';

CREATE TABLE booking (
    id           bigserial PRIMARY KEY,
    pass_id      bigint      NOT NULL REFERENCES pass (id),
    user_id      bigint      NOT NULL REFERENCES users (id),
    status       text        NOT NULL DEFAULT 'READY' CHECK (status IN ('READY', 'COMPLETED', 'CANCELLED')),
    used_pass    boolean     NOT NULL DEFAULT false,
    attended     boolean     NOT NULL DEFAULT false,
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz NOT NULL,
    cancelled_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    modified_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at > started_at)
);
-- use-passes: keyset over id among completed bookings not yet deducted.
CREATE INDEX booking_unused_idx ON booking (id) WHERE status = 'COMPLETED' AND used_pass = false;
-- notify-before-class: READY bookings starting inside a window.
CREATE INDEX booking_ready_started_at_idx ON booking (started_at, id) WHERE status = 'READY';
-- make-statistics: bookings per hour of their end.
CREATE INDEX booking_ended_at_idx ON booking (ended_at);
CREATE INDEX booking_pass_idx ON booking (pass_id);
CREATE INDEX booking_user_idx ON booking (user_id, started_at);

CREATE TABLE notification (
    id          bigserial PRIMARY KEY,
    uuid        uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    user_id     bigint      NOT NULL REFERENCES users (id),
    event       text        NOT NULL CHECK (event IN ('BEFORE_CLASS', 'BEFORE_EXPIRY')),
    dedup_key   text        NOT NULL UNIQUE,
    text        text        NOT NULL,
    sent        boolean     NOT NULL DEFAULT false,
    sent_at     timestamptz,
    error       text,        -- set when delivery failed permanently; not retried
    created_at  timestamptz NOT NULL DEFAULT now(),
    modified_at timestamptz NOT NULL DEFAULT now(),
    CHECK (sent = (sent_at IS NOT NULL))
);
-- senders: keyset over id among notifications still to send.
CREATE INDEX notification_unsent_idx ON notification (id) WHERE sent = false AND error IS NULL;

CREATE TABLE statistics (
    id              bigserial PRIMARY KEY,
    statistics_at   timestamptz NOT NULL UNIQUE,  -- the hour
    all_count       integer     NOT NULL DEFAULT 0 CHECK (all_count >= 0),
    attended_count  integer     NOT NULL DEFAULT 0 CHECK (attended_count >= 0),
    cancelled_count integer     NOT NULL DEFAULT 0 CHECK (cancelled_count >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (date_trunc('hour', statistics_at) = statistics_at)
);

--bun:split

-- The job repository: Spring Batch 5's tables and columns, with additions
-- for partitions (parent, key range, barrier counters) and skipped items.

CREATE TABLE batch_job_instance (
    job_instance_id bigserial PRIMARY KEY,
    version         bigint       NOT NULL DEFAULT 0,
    job_name        varchar(100) NOT NULL,
    job_key         varchar(64)  NOT NULL,  -- hash of the identifying parameters
    create_time     timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT job_inst_un UNIQUE (job_name, job_key)
);

CREATE TABLE batch_job_execution (
    job_execution_id bigserial PRIMARY KEY,
    version          bigint       NOT NULL DEFAULT 0,
    job_instance_id  bigint       NOT NULL REFERENCES batch_job_instance (job_instance_id),
    create_time      timestamptz  NOT NULL DEFAULT now(),
    start_time       timestamptz,
    end_time         timestamptz,
    status           varchar(10)  NOT NULL CHECK (status IN ('STARTING', 'STARTED', 'STOPPING', 'STOPPED', 'FAILED', 'COMPLETED', 'ABANDONED')),
    exit_code        varchar(2500) NOT NULL DEFAULT 'UNKNOWN',
    exit_message     text         NOT NULL DEFAULT '',
    last_updated     timestamptz  NOT NULL DEFAULT now()
);
-- At most one running execution per job instance (DESIGN §3).
CREATE UNIQUE INDEX batch_job_execution_one_running_idx ON batch_job_execution (job_instance_id)
    WHERE status IN ('STARTING', 'STARTED', 'STOPPING');
CREATE INDEX batch_job_execution_instance_idx ON batch_job_execution (job_instance_id, job_execution_id);
-- reconciler: running executions by staleness.
CREATE INDEX batch_job_execution_running_idx ON batch_job_execution (last_updated)
    WHERE status IN ('STARTING', 'STARTED', 'STOPPING');

CREATE TABLE batch_job_execution_params (
    job_execution_id bigint       NOT NULL REFERENCES batch_job_execution (job_execution_id) ON DELETE CASCADE,
    parameter_name   varchar(100) NOT NULL,
    parameter_type   varchar(100) NOT NULL DEFAULT 'java.lang.String',
    parameter_value  text         NOT NULL,
    identifying      char(1)      NOT NULL CHECK (identifying IN ('Y', 'N')),
    PRIMARY KEY (job_execution_id, parameter_name)
);

CREATE TABLE batch_job_execution_context (
    job_execution_id   bigint        PRIMARY KEY REFERENCES batch_job_execution (job_execution_id) ON DELETE CASCADE,
    short_context      varchar(2500) NOT NULL DEFAULT '{}',
    serialized_context text
);

CREATE TABLE batch_step_execution (
    step_execution_id        bigserial PRIMARY KEY,
    version                  bigint       NOT NULL DEFAULT 0,
    step_name                varchar(100) NOT NULL,
    job_execution_id         bigint       NOT NULL REFERENCES batch_job_execution (job_execution_id),
    parent_step_execution_id bigint       REFERENCES batch_step_execution (step_execution_id),
    partition_key            varchar(100),   -- e.g. "partition-0007"
    range_start              bigint,         -- a partition's key range [range_start, range_end)
    range_end                bigint,
    partitions_total         integer,        -- on a partitioned parent: its children
    partitions_done          integer      NOT NULL DEFAULT 0, -- barrier counter
    create_time              timestamptz  NOT NULL DEFAULT now(),
    start_time               timestamptz,
    end_time                 timestamptz,
    status                   varchar(10)  NOT NULL CHECK (status IN ('STARTING', 'STARTED', 'STOPPING', 'STOPPED', 'FAILED', 'COMPLETED', 'ABANDONED')),
    commit_count             bigint       NOT NULL DEFAULT 0,
    read_count               bigint       NOT NULL DEFAULT 0,
    filter_count             bigint       NOT NULL DEFAULT 0,
    write_count              bigint       NOT NULL DEFAULT 0,
    read_skip_count          bigint       NOT NULL DEFAULT 0,
    write_skip_count         bigint       NOT NULL DEFAULT 0,
    process_skip_count       bigint       NOT NULL DEFAULT 0,
    rollback_count           bigint       NOT NULL DEFAULT 0,
    exit_code                varchar(2500) NOT NULL DEFAULT 'UNKNOWN',
    exit_message             text         NOT NULL DEFAULT '',
    last_updated             timestamptz  NOT NULL DEFAULT now(),
    CHECK ((parent_step_execution_id IS NULL) = (partition_key IS NULL))
);
-- one top-level execution of a step per job execution, one child per partition key:
-- a duplicate delivery cannot create a second one.
CREATE UNIQUE INDEX batch_step_execution_step_idx ON batch_step_execution (job_execution_id, step_name)
    WHERE parent_step_execution_id IS NULL;
CREATE UNIQUE INDEX batch_step_execution_partition_idx ON batch_step_execution (parent_step_execution_id, partition_key)
    WHERE parent_step_execution_id IS NOT NULL;
CREATE INDEX batch_step_execution_job_idx ON batch_step_execution (job_execution_id);

CREATE TABLE batch_step_execution_context (
    step_execution_id  bigint        PRIMARY KEY REFERENCES batch_step_execution (step_execution_id) ON DELETE CASCADE,
    short_context      varchar(2500) NOT NULL DEFAULT '{}',
    serialized_context text
);

CREATE TABLE batch_skipped_item (
    id                bigserial PRIMARY KEY,
    step_execution_id bigint      NOT NULL REFERENCES batch_step_execution (step_execution_id) ON DELETE CASCADE,
    item_key          text        NOT NULL,
    phase             varchar(10) NOT NULL CHECK (phase IN ('read', 'process', 'write')),
    error             text        NOT NULL,
    create_time       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batch_skipped_item_step_idx ON batch_skipped_item (step_execution_id, id);

--bun:split

-- Data exports (issue: export service): one row per request.
CREATE TABLE export (
    id               bigserial PRIMARY KEY,
    requested_by     text        NOT NULL DEFAULT '',
    kind             text        NOT NULL CHECK (kind IN ('passes', 'bookings', 'statistics')),
    format           text        NOT NULL CHECK (format IN ('xlsx', 'csv')),
    filter           jsonb       NOT NULL DEFAULT '{}',
    filter_hash      text        NOT NULL,   -- hash of kind, format and the normalized filter
    status           text        NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'EXPIRED')),
    job_execution_id bigint      REFERENCES batch_job_execution (job_execution_id),
    total_rows       bigint,
    written_rows     bigint      NOT NULL DEFAULT 0,
    file_key         text,
    size_bytes       bigint,
    sha256           text,
    error            text,
    expires_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    modified_at      timestamptz NOT NULL DEFAULT now()
);
-- one pending or running export per identical request.
CREATE UNIQUE INDEX export_in_flight_idx ON export (filter_hash) WHERE status IN ('PENDING', 'RUNNING');
CREATE INDEX export_hash_idx ON export (filter_hash, id);
