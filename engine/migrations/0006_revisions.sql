-- Revisions for berthd's in-memory view of containers (containers::memory).
--
-- `revision` holds one counter that every change to what `docker ps` shows
-- raises: containers, their mounts, endpoints and sandboxes, networks and
-- tags. A container's `rev` is the counter's value at its last change (its
-- own row, its mounts, endpoints or sandbox, or a network it is on).
-- A listing that finds the counter where it left it reads nothing more; one
-- that does not reads only rows with a higher `rev`. Triggers rather than
-- the engine's code keep them, so every writer counts, including another
-- berthd finishing its requests during a takeover.
ALTER TABLE containers ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
CREATE INDEX containers_rev ON containers(rev);

CREATE TABLE revision (
    n INTEGER NOT NULL
);
INSERT INTO revision (n) VALUES (0);

CREATE TRIGGER containers_inserted AFTER INSERT ON containers BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision) WHERE id = NEW.id;
END;
-- `OF` leaves out rev itself, so the trigger's own update does not count.
CREATE TRIGGER containers_updated
AFTER UPDATE OF id, name, image_id, image_ref, created, config, host_config, state ON containers
BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision) WHERE id = NEW.id;
END;
CREATE TRIGGER containers_deleted AFTER DELETE ON containers BEGIN
    UPDATE revision SET n = n + 1;
END;

CREATE TRIGGER mounts_inserted AFTER INSERT ON container_mounts BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision) WHERE id = NEW.container_id;
END;
CREATE TRIGGER mounts_updated AFTER UPDATE ON container_mounts BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision) WHERE id IN (OLD.container_id, NEW.container_id);
END;
CREATE TRIGGER mounts_deleted AFTER DELETE ON container_mounts BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision) WHERE id = OLD.container_id;
END;

CREATE TRIGGER endpoints_inserted AFTER INSERT ON endpoints BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision) WHERE id = NEW.container_id;
END;
CREATE TRIGGER endpoints_updated AFTER UPDATE ON endpoints BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision) WHERE id IN (OLD.container_id, NEW.container_id);
END;
CREATE TRIGGER endpoints_deleted AFTER DELETE ON endpoints BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision) WHERE id = OLD.container_id;
END;

CREATE TRIGGER sandboxes_inserted AFTER INSERT ON sandboxes BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision) WHERE id = NEW.container_id;
END;
CREATE TRIGGER sandboxes_updated AFTER UPDATE ON sandboxes BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision) WHERE id IN (OLD.container_id, NEW.container_id);
END;
CREATE TRIGGER sandboxes_deleted AFTER DELETE ON sandboxes BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision) WHERE id = OLD.container_id;
END;

-- A network's name and id are in its members' listings.
CREATE TRIGGER networks_inserted AFTER INSERT ON networks BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision)
        WHERE id IN (SELECT container_id FROM endpoints WHERE network_id = NEW.id);
END;
CREATE TRIGGER networks_updated AFTER UPDATE ON networks BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision)
        WHERE id IN (SELECT container_id FROM endpoints WHERE network_id IN (OLD.id, NEW.id));
END;
CREATE TRIGGER networks_deleted AFTER DELETE ON networks BEGIN
    UPDATE revision SET n = n + 1;
    UPDATE containers SET rev = (SELECT n FROM revision)
        WHERE id IN (SELECT container_id FROM endpoints WHERE network_id = OLD.id);
END;

-- Tags decide whether a listing names a container's image or gives its id.
CREATE TRIGGER tags_inserted AFTER INSERT ON tags BEGIN
    UPDATE revision SET n = n + 1;
END;
CREATE TRIGGER tags_updated AFTER UPDATE ON tags BEGIN
    UPDATE revision SET n = n + 1;
END;
CREATE TRIGGER tags_deleted AFTER DELETE ON tags BEGIN
    UPDATE revision SET n = n + 1;
END;
