-- psn hub schema, version 5: account health checks.

-- The last failed identity check of an account (cleared by the next successful one), shown by
-- `psn accounts list` and `psn doctor`. `last_check_at` (version 1) is when it was made.
ALTER TABLE accounts ADD COLUMN last_check_error TEXT;
