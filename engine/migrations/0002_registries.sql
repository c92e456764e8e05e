-- Blobs in the content store (content/sha256/<hex>) that hold a layer: the
-- compressed blob a registry served, or the plain tar a load brought. A push
-- reuses them, so pushing a pulled image sends the same bytes it came as.
CREATE TABLE layer_blobs (
    diff_id    TEXT NOT NULL,
    digest     TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size       INTEGER NOT NULL,
    PRIMARY KEY (diff_id, digest)
);

-- RepoDigests: "127.0.0.1:5000/app@sha256:…" for the manifest an image was
-- pulled by or pushed as.
CREATE TABLE repo_digests (
    name     TEXT PRIMARY KEY,
    image_id TEXT NOT NULL
);
CREATE INDEX repo_digests_image ON repo_digests(image_id);

-- The manifest (digest in the content store) an image was pulled with, so
-- that pushing it again yields the same digest; '' when it has none.
ALTER TABLE images ADD COLUMN manifest TEXT NOT NULL DEFAULT '';
-- The image a commit or build started from ('' for none), for history and
-- dangling-child checks.
ALTER TABLE images ADD COLUMN parent TEXT NOT NULL DEFAULT '';
