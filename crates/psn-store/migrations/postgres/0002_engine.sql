-- psn hub schema, version 2 (PostgreSQL): what the publishing engine needs.

-- One in-flight delivery per account, enforced by the database (threads stay ordered,
-- budgets hold, even with many workers).
CREATE UNIQUE INDEX deliveries_one_in_flight ON deliveries (account_id) WHERE status = 'claimed';

-- After this time a delivery that keeps failing transiently is failed.
ALTER TABLE deliveries ADD COLUMN deadline_at BIGINT;

-- Whatever needs a human: failed posts, deliveries psn could not confirm, dead tokens.
CREATE TABLE alerts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_by TEXT NOT NULL,
    priority TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    notified_at BIGINT,
    resolved_at BIGINT
);
CREATE INDEX alerts_open ON alerts (resolved_at, priority, id);

-- Circuit breakers per platform ('platform:x') and per account ('account:a_…').
CREATE TABLE breakers (
    scope TEXT PRIMARY KEY,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    open_until BIGINT,
    times_opened BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

-- Rate budgets per account: a window with a capacity shared by priorities (publishing may use
-- all of it, engagement and analytics only part), and a block until the platform's reset.
CREATE TABLE rate_budgets (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    window_start BIGINT NOT NULL,
    window_ms BIGINT NOT NULL,
    capacity BIGINT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0,
    blocked_until BIGINT,
    updated_at BIGINT NOT NULL
);
