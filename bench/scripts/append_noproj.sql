-- es.append_event into bench_noproj, an event table without projections: the baseline of the
-- inline projection cost (issue 5).
-- group: inline_proj
-- baseline: append_noproj
-- events: 1
-- sync: off
-- extended: yes
\set sid random(1, 10000)
\set n random(1, 1000000)
SELECT * FROM es.append_event('p-' || :sid, NULL, 'Deposited', jsonb_build_object('amount', :n::int),
                              NULL, NULL, 'bench_noproj');
