TRUNCATE jobs;
INSERT INTO jobs SELECT g, 'available' FROM generate_series(1, 2000000) g;
VACUUM ANALYZE jobs;
CHECKPOINT;
