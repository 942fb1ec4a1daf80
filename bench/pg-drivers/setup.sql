DROP TABLE IF EXISTS records;
DROP TABLE IF EXISTS jobs;
CREATE TABLE records (
  queue_id bigint NOT NULL,
  partition int NOT NULL,
  "offset" bigint NOT NULL,
  content text NOT NULL,
  PRIMARY KEY (queue_id, partition, "offset")
);
CREATE TABLE jobs (
  id bigint PRIMARY KEY,
  state text NOT NULL
);
CREATE INDEX jobs_available ON jobs (id) WHERE state = 'available';
