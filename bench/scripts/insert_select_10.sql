-- Baseline: INSERT ... SELECT of the same 10 event rows (from the same JSON array) into bench_raw.
-- group: batch10
-- baseline: insert_select_10
-- events: 10
-- sync: off
\set sid random(1, 10000)
INSERT INTO bench_raw (global_position, stream_id, stream_version, event_type, data, metadata)
SELECT p, 'b10-' || :sid, p, e->>'type', e->'data', e->'metadata'
FROM (SELECT nextval('bench_raw_seq') AS p, e
      FROM jsonb_array_elements('[{"type":"ItemAdded","data":{"sku":"sku-1","qty":1,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-2","qty":2,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-3","qty":3,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-4","qty":4,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-5","qty":5,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-6","qty":6,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-7","qty":7,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-8","qty":8,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-9","qty":9,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-10","qty":10,"price":"9.99"},"metadata":{"source":"bench"}}]'::jsonb) e) x
RETURNING global_position;
