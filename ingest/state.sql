-- The state database (SQLite, WAL). See ingest/state.py for what each table is for.
-- Columns added later also go to _add_missing_columns there, for older databases.
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    last_status TEXT,
    http_status INTEGER,
    last_attempt TEXT,
    last_success TEXT,
    last_error TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    failing_since TEXT
);
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    feed TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    source_hash TEXT NOT NULL,
    date TEXT NOT NULL,
    lastmod TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS first_seen (
    key TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    key TEXT PRIMARY KEY,
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS backfills (
    id TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    pages INTEGER NOT NULL,
    archived INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    reached TEXT,
    done INTEGER NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS summaries (
    key TEXT PRIMARY KEY,
    keywords TEXT NOT NULL,
    summary TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    url TEXT PRIMARY KEY,
    file TEXT,
    folder TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_attempt TEXT
);
