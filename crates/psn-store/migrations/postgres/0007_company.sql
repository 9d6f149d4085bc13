-- psn hub schema, version 7 (PostgreSQL): team members and approval decisions. Company hubs are
-- PostgreSQL only; row-level security is applied on company hubs by `company.rs` after the
-- migrations (with the hub's role names), so personal PostgreSQL hubs stay without it.

-- Who belongs to the hub and with which role. The member's user id is the tenant value that
-- `created_by` columns hold.
CREATE TABLE team_members (
    user_id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'contributor')),
    added_by TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Approval decisions on posts. `created_by` is the post's author (the tenant column), so the
-- author sees the decision and its reason; `decided_by` is the editor or admin who decided.
CREATE TABLE post_reviews (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
    decided_by TEXT NOT NULL,
    reason TEXT,
    decided_at BIGINT NOT NULL
);
CREATE INDEX post_reviews_post ON post_reviews (post_id, id);
CREATE INDEX posts_created_by ON posts (created_by, status);
