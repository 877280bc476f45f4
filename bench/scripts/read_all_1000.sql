-- es.read_all: a page of 1000 events in the commit-safe global order after a random position.
-- group: read_all
-- baseline: select_all_1000
-- events: 1000
-- sync: off
\set after random(0, :read_events - 1000)
SELECT * FROM es.read_all(:after, 1000);
