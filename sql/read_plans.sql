-- The read plans (runtime.cpp execute_into_result): es.read_all, es.read_stream and
-- es.read_stream_backward run the ordered index range scan whatever the store's statistics
-- say. With one analysed row the cheapest plan would be a sequential scan and a sort, and a
-- kept plan would go on using it while the store grows. pg_stat_xact_user_tables counts the
-- scans this backend started on the store (not yet reported): compared before and after, in
-- one transaction.
CREATE SCHEMA regress_plans;
SELECT es.create_event_table('regress_plans.tiny');
SELECT last_position FROM es.append_event('p-1', NULL, 'T', '{}', store => 'regress_plans.tiny');
ANALYZE regress_plans.tiny;
BEGIN;
SELECT seq_scan AS seq0, idx_scan AS idx0 FROM pg_stat_xact_user_tables
  WHERE relid = 'regress_plans.tiny'::regclass \gset
SELECT count(*) FROM es.read_all(0, 10, store => 'regress_plans.tiny');
SELECT count(*) FROM es.read_all(0, 10, ARRAY['T'], 'p-', 'regress_plans.tiny');
SELECT count(*) FROM es.read_stream('p-1', 1, 10, 'regress_plans.tiny');
SELECT count(*) FROM es.read_stream_backward('p-1', NULL, 10, 'regress_plans.tiny');
-- More than five executions of each: a plan cache left to choose by cost settles on custom
-- or generic plans after the fifth.
SELECT sum(n) FROM generate_series(1, 8) i,
  LATERAL (SELECT count(*) AS n FROM es.read_all(0, i, store => 'regress_plans.tiny')) r;
SELECT sum(n) FROM generate_series(1, 8) i,
  LATERAL (SELECT count(*) AS n FROM es.read_stream('p-1', i, 10, 'regress_plans.tiny')) r;
SELECT seq_scan - :seq0 AS sequential_scans, idx_scan - :idx0 AS index_scans
  FROM pg_stat_xact_user_tables WHERE relid = 'regress_plans.tiny'::regclass;
COMMIT;
SELECT es.drop_event_table('regress_plans.tiny');
DROP SCHEMA regress_plans;
