-- What the demo jobs did, for the tests to count: every attempt that started, every
-- attempt that finished its work, every periodic tick.
CREATE TABLE demo_starts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE TABLE demo_runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE TABLE demo_ticks (
    id INTEGER PRIMARY KEY,
    slot INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
-- "Has this job started before" is asked at every start.
CREATE INDEX demo_starts_key ON demo_starts (key);
CREATE INDEX demo_runs_key ON demo_runs (key);
