-- A cancellation asked for from payment on waits for shipping's answer (the Shipment decides
-- whether it was dispatched): the order keeps its status meanwhile, and these say how the
-- request stands. Portable SQL, one column per statement.
-- REQUESTED (waiting for shipping), ACCEPTED (the order was cancelled) or REFUSED (too late);
-- NULL when no cancellation was requested.
ALTER TABLE orders ADD COLUMN cancellation_request TEXT;
-- The reason and detail the order is cancelled with if shipping agrees.
ALTER TABLE orders ADD COLUMN cancellation_request_reason TEXT;
ALTER TABLE orders ADD COLUMN cancellation_request_detail TEXT;
-- Shipping's reason when it refused.
ALTER TABLE orders ADD COLUMN cancellation_refusal TEXT;
