-- The carrier's latest report on the order's shipment (shipment.events ShipmentTrackingUpdated):
-- status IN_TRANSIT, OUT_FOR_DELIVERY or DELIVERY_FAILED, where, and when (epoch ms).
ALTER TABLE order_shipments ADD COLUMN tracking_status TEXT;
ALTER TABLE order_shipments ADD COLUMN tracking_location TEXT;
ALTER TABLE order_shipments ADD COLUMN tracking_at BIGINT;
