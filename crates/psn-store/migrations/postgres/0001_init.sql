-- psn hub schema, version 1 (PostgreSQL). Never edit after release: add a new migration.
-- Times are Unix milliseconds (BIGINT) on both backends so that every query is written once.

CREATE TABLE hub_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    created_by TEXT NOT NULL,
    platform TEXT NOT NULL,
    handle TEXT NOT NULL,
    external_id TEXT NOT NULL,
    service_url TEXT NOT NULL DEFAULT '',
    access_token_enc BYTEA,
    refresh_token_enc BYTEA,
    expires_at BIGINT,
    status TEXT NOT NULL,
    platform_status TEXT NOT NULL DEFAULT '{}',
    last_refresh_at BIGINT,
    last_check_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT accounts_identity UNIQUE (created_by, platform, service_url, external_id)
);
CREATE INDEX accounts_platform ON accounts (platform, status);

CREATE TABLE posts (
    id TEXT PRIMARY KEY,
    created_by TEXT NOT NULL,
    idempotency_key TEXT,
    phase TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    language TEXT,
    media TEXT NOT NULL DEFAULT '[]',
    options TEXT NOT NULL DEFAULT '{}',
    run_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT posts_idempotency UNIQUE (created_by, idempotency_key)
);
CREATE INDEX posts_status_run_at ON posts (status, run_at);
CREATE INDEX posts_run_at ON posts (run_at);

CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    post_id TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    created_by TEXT NOT NULL,
    platform TEXT NOT NULL,
    status TEXT NOT NULL,
    run_at BIGINT NOT NULL,
    segments TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    lease_owner TEXT,
    lease_expires_at BIGINT,
    attempt_count BIGINT NOT NULL DEFAULT 0,
    external_id TEXT,
    external_url TEXT,
    last_error TEXT,
    published_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT deliveries_one_per_account UNIQUE (created_by, post_id, account_id)
);
CREATE INDEX deliveries_due ON deliveries (status, run_at);
CREATE INDEX deliveries_post ON deliveries (post_id);
CREATE INDEX deliveries_account ON deliveries (account_id, status);

CREATE TABLE delivery_attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    step TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    worker TEXT,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    error_class TEXT,
    error TEXT,
    external_id TEXT
);
-- Several attempts may share a step's idempotency key (retries of the same step).
CREATE INDEX attempts_delivery ON delivery_attempts (delivery_id, id);
CREATE INDEX attempts_key ON delivery_attempts (created_by, idempotency_key);

CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_subject ON audit_log (subject_type, subject_id);
