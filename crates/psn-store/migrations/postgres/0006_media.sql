-- The media library: one row per stored file (content hash), and which posts use it.
-- `added_at` is the last time the file was added (unattached media expire 24 h after it);
-- `deleted_at` is set when the lifecycle job or `psn media rm` deleted the file.
CREATE TABLE media (
    sha256 TEXT PRIMARY KEY,
    created_by TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    mime TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    original_name TEXT NOT NULL DEFAULT '',
    probe TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    added_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX media_live ON media (deleted_at, added_at);

CREATE TABLE post_media (
    post_id TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL REFERENCES media (sha256),
    created_by TEXT NOT NULL,
    PRIMARY KEY (post_id, sha256)
);
CREATE INDEX post_media_sha256 ON post_media (sha256);
