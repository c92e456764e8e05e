-- Networks (the predefined bridge, host and none, and user-defined ones).
-- doc is the network's JSON record (driver, IPAM, options, labels, bridge
-- name); see networks::record.
CREATE TABLE networks (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    doc     TEXT NOT NULL
);

-- A container's membership of a network, from create or `network
-- connect`: aliases, a requested address, its interface name. The address
-- it got is recorded while it runs (in its sandbox).
CREATE TABLE endpoints (
    container_id TEXT NOT NULL,
    network_id   TEXT NOT NULL,
    doc          TEXT NOT NULL,
    PRIMARY KEY (container_id, network_id)
);
CREATE INDEX endpoints_network ON endpoints(network_id);

-- A running container's network namespace as set up by netavark: the
-- bind-mounted namespace file, the exact netavark options used (teardown
-- needs the same), the addresses each network gave and the published
-- ports with their host ports resolved. Lives from start to stop.
CREATE TABLE sandboxes (
    container_id TEXT PRIMARY KEY,
    doc          TEXT NOT NULL
);
