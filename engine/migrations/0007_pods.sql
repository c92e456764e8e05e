-- Pod sandboxes of the CRI (cri::pods): name is the reserved
-- <name>_<namespace>_<uid>_<attempt> that no two pods share; doc is the
-- pod's JSON record (metadata, labels, its kept namespaces, the CNI
-- network it was attached with and what the plugins answered).
CREATE TABLE pods (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc  TEXT NOT NULL
);
