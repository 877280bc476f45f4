-- es.read_stream of a 20-event stream.
-- group: read_stream
-- baseline: select_stream_20
-- events: 20
-- sync: off
\set sid random(1, :read_streams)
SELECT * FROM es.read_stream('r-' || :sid, 1, 20);
