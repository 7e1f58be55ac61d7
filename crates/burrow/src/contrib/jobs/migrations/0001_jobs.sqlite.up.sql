-- The job queue (crates/burrow/src/jobs/queue.rs). Times are Unix milliseconds.
CREATE TABLE _jobs (
    id INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    queue TEXT NOT NULL DEFAULT 'default',
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    run_at INTEGER NOT NULL,
    locked_at INTEGER,
    lease_until INTEGER,
    lease_owner TEXT,
    last_error TEXT,
    unique_key TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
-- The next due job, and the claim's order, over waiting jobs only.
CREATE INDEX _jobs_due ON _jobs (run_at) WHERE status IN ('pending', 'failed');
CREATE INDEX _jobs_claim ON _jobs (priority DESC, run_at, id) WHERE status IN ('pending', 'failed');
-- Expired leases.
CREATE INDEX _jobs_leases ON _jobs (lease_until) WHERE status = 'running';
-- Listings by state, and purging completed jobs.
CREATE INDEX _jobs_status ON _jobs (status, finished_at);
