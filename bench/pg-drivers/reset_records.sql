TRUNCATE records;
INSERT INTO records SELECT 0, (g % 16)::int, g, repeat('x', 1024) FROM generate_series(0, 99999) g;
VACUUM ANALYZE records;
CHECKPOINT;
