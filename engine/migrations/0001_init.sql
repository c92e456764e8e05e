-- Containers as the Docker API describes them. config and host_config hold
-- the Docker JSON (Config, HostConfig); state holds berth's State record.
CREATE TABLE containers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    image_id    TEXT NOT NULL,
    image_ref   TEXT NOT NULL,
    created     TEXT NOT NULL,
    config      TEXT NOT NULL,
    host_config TEXT NOT NULL,
    state       TEXT NOT NULL
);
CREATE INDEX containers_image ON containers(image_id);

-- Images by config digest ("sha256:…"); layers are the diff ids in order,
-- chains the matching chain ids (the snapshot directory names).
CREATE TABLE images (
    id      TEXT PRIMARY KEY,
    config  TEXT NOT NULL,
    layers  TEXT NOT NULL,
    chains  TEXT NOT NULL,
    size    INTEGER NOT NULL,
    created TEXT NOT NULL
);

-- Tags: full normalized reference ("docker.io/library/busybox:latest") to image.
CREATE TABLE tags (
    name     TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE INDEX tags_image ON tags(image_id);

-- Small engine state, such as the cursor into the core's event log.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
