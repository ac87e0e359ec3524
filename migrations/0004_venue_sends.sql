-- Every order action written to the venue (places, cancels and cancel-alls; from the outbox,
-- or not, such as the start-up cancel-all): the budget's audit trail, recorded by the rate
-- limiter when it lets the request go, and what the limiter is seeded from at start.
-- Rebuilt so that outbox_id may be NULL, with the action's kind and market.
CREATE TABLE outbox_sends_v4 (
    id          INTEGER PRIMARY KEY,
    outbox_id   INTEGER REFERENCES outbox(id),
    attempt     INTEGER NOT NULL DEFAULT 0,
    sent_at_ms  INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('place', 'cancel', 'cancel_all')),
    market      TEXT    NOT NULL,
    source      TEXT    NOT NULL DEFAULT 'outbox'
);
INSERT INTO outbox_sends_v4(id, outbox_id, attempt, sent_at_ms, kind, market, source)
    SELECT s.id, s.outbox_id, s.attempt, s.sent_at_ms, COALESCE(o.kind, 'place'), COALESCE(o.market, ''), 'outbox'
    FROM outbox_sends s LEFT JOIN outbox o ON o.id = s.outbox_id;
DROP TABLE outbox_sends;
ALTER TABLE outbox_sends_v4 RENAME TO outbox_sends;
CREATE INDEX outbox_sends_ts ON outbox_sends(sent_at_ms);
