-- What a shipment's label prints besides the row's carrier and tracking number: the address
-- and the lines, as JSON {"ship_to": {name, street, city, postal_code, country} | null,
-- "lines": [{sku, quantity}]}, from ShipmentScheduled. NULL for rows of other events.
ALTER TABLE shipments ADD COLUMN label_json TEXT NULL;
