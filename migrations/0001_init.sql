-- deltadefi-mm schema, version 1. Prices, sizes and money are decimal TEXT, never REAL.

CREATE TABLE quotes (
    id            INTEGER PRIMARY KEY,
    market        TEXT    NOT NULL,
    ts_ms         INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    ref_bid       TEXT    NOT NULL,
    ref_ask       TEXT    NOT NULL,
    fair          TEXT    NOT NULL,
    bid           TEXT,
    ask           TEXT,
    inventory     TEXT    NOT NULL,
    levels        TEXT    NOT NULL            -- JSON array of {slot, price, size}
);
CREATE INDEX quotes_market_ts ON quotes(market, ts_ms);

CREATE TABLE orders (
    client_order_id TEXT PRIMARY KEY,
    market          TEXT    NOT NULL,
    slot            TEXT    NOT NULL,
    side            TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    price           TEXT    NOT NULL,
    size            TEXT    NOT NULL,
    filled          TEXT    NOT NULL DEFAULT '0',
    state           TEXT    NOT NULL,
    venue_order_id  TEXT,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    last_error      TEXT
);
CREATE INDEX orders_state ON orders(state);
CREATE INDEX orders_venue ON orders(venue_order_id);

CREATE TABLE order_events (
    id              INTEGER PRIMARY KEY,
    client_order_id TEXT    NOT NULL REFERENCES orders(client_order_id),
    ts_ms           INTEGER NOT NULL,
    from_state      TEXT,
    to_state        TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    detail          TEXT
);
CREATE INDEX order_events_order ON order_events(client_order_id);

CREATE TABLE fills (
    id              INTEGER PRIMARY KEY,
    trade_id        TEXT    NOT NULL UNIQUE,
    client_order_id TEXT,
    venue_order_id  TEXT    NOT NULL,
    market          TEXT    NOT NULL,
    side            TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    price           TEXT    NOT NULL,
    size            TEXT    NOT NULL,
    fee             TEXT    NOT NULL,
    liquidity       TEXT    NOT NULL,
    ts_ms           INTEGER NOT NULL
);
CREATE INDEX fills_market ON fills(market, ts_ms);

CREATE TABLE outbox (
    id                 INTEGER PRIMARY KEY,
    kind               TEXT    NOT NULL CHECK (kind IN ('place', 'cancel', 'cancel_all')),
    market             TEXT    NOT NULL,
    client_order_id    TEXT,
    venue_order_id     TEXT,
    slot               TEXT,
    side               TEXT,
    price              TEXT,
    size               TEXT,
    status             TEXT    NOT NULL CHECK (status IN
                         ('pending', 'in_flight', 'unknown', 'done', 'rejected', 'superseded', 'dead')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    created_at_ms      INTEGER NOT NULL,
    sent_at_ms         INTEGER,
    next_attempt_at_ms INTEGER NOT NULL,
    completed_at_ms    INTEGER,
    last_error         TEXT
);
CREATE INDEX outbox_status ON outbox(status);

-- One row per request actually sent to the venue (retries included): the budget audit trail.
CREATE TABLE outbox_sends (
    id          INTEGER PRIMARY KEY,
    outbox_id   INTEGER NOT NULL REFERENCES outbox(id),
    attempt     INTEGER NOT NULL,
    sent_at_ms  INTEGER NOT NULL
);
CREATE INDEX outbox_sends_ts ON outbox_sends(sent_at_ms);

CREATE TABLE balances (
    asset          TEXT PRIMARY KEY,
    free           TEXT    NOT NULL,
    locked         TEXT    NOT NULL,
    updated_at_ms  INTEGER NOT NULL
);

CREATE TABLE risk_events (
    id          INTEGER PRIMARY KEY,
    ts_ms       INTEGER NOT NULL,
    market      TEXT,
    from_state  TEXT    NOT NULL,
    to_state    TEXT    NOT NULL,
    reason      TEXT    NOT NULL
);

-- Operator commands for a running service (the `kill` CLI writes here).
CREATE TABLE control (
    id             INTEGER PRIMARY KEY,
    ts_ms          INTEGER NOT NULL,
    command        TEXT    NOT NULL CHECK (command IN ('kill', 'resume')),
    consumed_at_ms INTEGER
);
