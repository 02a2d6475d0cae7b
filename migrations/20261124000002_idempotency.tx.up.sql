-- Idempotency keys of API requests (POST /api/admin/grants): the same key
-- with the same body returns the first response and creates nothing.
CREATE TABLE idempotency_key (
    key          text        NOT NULL,
    scope        text        NOT NULL,   -- who used it (admin identity) and the route
    request_hash text        NOT NULL,
    status       integer     NOT NULL,
    response     jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
