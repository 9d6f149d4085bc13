-- psn hub schema, version 4: walk due deliveries in claim order. The claim takes the first
-- eligible delivery by (run_at, id); without this index each claim scanned and sorted every due
-- delivery (BENCHMARKS.md, B1).
CREATE INDEX deliveries_claimable ON deliveries (run_at, id)
    WHERE status IN ('scheduled', 'retry_wait', 'unconfirmed');
