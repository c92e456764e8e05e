-- Named and anonymous volumes of the local driver; their data lives in
-- <data-root>/volumes/<name>/_data. labels and options are JSON objects.
CREATE TABLE volumes (
    name      TEXT PRIMARY KEY,
    driver    TEXT NOT NULL,
    labels    TEXT NOT NULL,
    options   TEXT NOT NULL,
    created   TEXT NOT NULL,
    anonymous INTEGER NOT NULL DEFAULT 0
);

-- What each container mounts, resolved at create (-v, --mount, --tmpfs,
-- image VOLUMEs, --volumes-from): the spec, inspect's Mounts, `volume rm`'s
-- in-use check and `rm -v` all read it. kind is bind, volume or tmpfs;
-- source is a host path (bind), a volume name (volume) or empty (tmpfs).
CREATE TABLE container_mounts (
    container_id TEXT NOT NULL,
    destination  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    source       TEXT NOT NULL,
    rw           INTEGER NOT NULL,
    mode         TEXT NOT NULL,
    propagation  TEXT NOT NULL,
    options      TEXT NOT NULL,
    copy_up      INTEGER NOT NULL,
    PRIMARY KEY (container_id, destination)
);
CREATE INDEX container_mounts_source ON container_mounts(kind, source);
