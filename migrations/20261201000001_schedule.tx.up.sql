-- The cron table a scheduler registered (DESIGN §9): the api shows what
-- actually runs, not its own environment. A starting scheduler replaces
-- the rows with its entries; a switched-off job has none.
CREATE TABLE schedule_entry (
    job_name      varchar(100) PRIMARY KEY,
    cron          varchar(100) NOT NULL,
    registered_by varchar(200) NOT NULL,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    modified_at   timestamptz  NOT NULL DEFAULT now()
);
