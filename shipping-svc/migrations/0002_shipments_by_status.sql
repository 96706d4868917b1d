-- GET /shipments?status=: one status's shipments in (updated_at, order_id) order, read in
-- index order up to the limit instead of sorting the whole table.
CREATE INDEX shipments_by_status ON shipments (status, updated_at, order_id);
