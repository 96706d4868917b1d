-- Event records a reader could not decode, parked byte for byte on `<stream>.events.dlq`
-- (projection `parked_events`, one row per dead letter): what `GET /sagas/stuck` lists.
CREATE TABLE parked_events (
    topic            TEXT   NOT NULL,
    partition_id     BIGINT NOT NULL,
    offset_id        BIGINT NOT NULL,
    source_topic     TEXT   NOT NULL,
    source_partition BIGINT NOT NULL,
    source_offset    BIGINT,
    -- the record's key: the aggregate id of the event
    aggregate_id     TEXT   NOT NULL,
    kind             TEXT   NOT NULL,
    reason           TEXT   NOT NULL,
    -- the consuming loop that parked it
    reader           TEXT   NOT NULL,
    parked_at        BIGINT NOT NULL,
    PRIMARY KEY (topic, partition_id, offset_id)
);

CREATE INDEX parked_events_by_aggregate ON parked_events (aggregate_id);
