-- psn hub schema, version 3 (PostgreSQL): proactive token refresh.

-- A short lease on an account's refresh: only the worker holding it may spend the refresh
-- token (a rotated refresh token used twice kills the session).
ALTER TABLE accounts ADD COLUMN refresh_lease_owner TEXT;
ALTER TABLE accounts ADD COLUMN refresh_lease_until BIGINT;

-- The last transient refresh failure (the account stays active), for `psn doctor`.
ALTER TABLE accounts ADD COLUMN last_refresh_error TEXT;
ALTER TABLE accounts ADD COLUMN last_refresh_error_at BIGINT;
