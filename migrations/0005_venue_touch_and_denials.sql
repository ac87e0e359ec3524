-- The venue's own touch (its book without our orders) beside each quote decision, for the
-- report's charts; NULL where the venue's book was unknown or stale.
ALTER TABLE quotes ADD COLUMN venue_bid TEXT;
ALTER TABLE quotes ADD COLUMN venue_ask TEXT;

-- Places RiskGuard denied, by reason, one row per check that denied something.
CREATE TABLE denials (
    id      INTEGER PRIMARY KEY,
    ts_ms   INTEGER NOT NULL,
    market  TEXT    NOT NULL,
    reason  TEXT    NOT NULL,
    count   INTEGER NOT NULL
);
CREATE INDEX denials_market_ts ON denials(market, ts_ms);
