-- es.append of a 10-event batch (a JSON array) to a random stream.
-- group: batch10
-- baseline: insert_select_10
-- events: 10
-- sync: off
\set sid random(1, 10000)
SELECT * FROM es.append('b10-' || :sid, NULL, '[{"type":"ItemAdded","data":{"sku":"sku-1","qty":1,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-2","qty":2,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-3","qty":3,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-4","qty":4,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-5","qty":5,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-6","qty":6,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-7","qty":7,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-8","qty":8,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-9","qty":9,"price":"9.99"},"metadata":{"source":"bench"}},{"type":"ItemAdded","data":{"sku":"sku-10","qty":10,"price":"9.99"},"metadata":{"source":"bench"}}]');
