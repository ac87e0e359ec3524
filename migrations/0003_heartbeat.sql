-- One row, rewritten every second by a running service: what `deltadefi-mm health` checks.
CREATE TABLE heartbeat (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    ts_ms         INTEGER NOT NULL,
    trading_state TEXT    NOT NULL
);
