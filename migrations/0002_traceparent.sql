-- W3C traceparent of the work that created an order and its outbox rows, so that what happens
-- to them later (acknowledgement, fills), even after a restart, joins the original trace.
ALTER TABLE orders ADD COLUMN traceparent TEXT;
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
