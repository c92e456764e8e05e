-- The legacy builder's cache: a step's key (a hash of the image it started
-- from and what it did, COPY content included) names the image it made.
-- Rows whose image is gone are ignored and pruned.
CREATE TABLE build_cache (
    key         TEXT PRIMARY KEY,
    image_id    TEXT NOT NULL,
    description TEXT NOT NULL,
    created     TEXT NOT NULL,
    last_used   TEXT NOT NULL,
    usage_count INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX build_cache_image ON build_cache(image_id);
