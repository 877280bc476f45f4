# pg_dump / pg_restore of everything (API.md §8): events of es.events and of a user store,
# stream versions, idempotency keys, outbox routes, messages and the per-group state of two
# consumer groups (acked, in flight under a lease, waiting for a retry, dead-lettered),
# subscription checkpoints, inline, async (half refreshed) and matview projections, snapshots.
# Every registry and read model is compared row by row between source and target, in a fresh
# database of the same cluster and in a fresh second cluster. Then the restored database goes
# on: new positions above every restored one, replays are duplicates, routed appends publish
# once, claims hand out exactly what was not acked (expired leases again, live leases not),
# subscriptions and async projections resume after their checkpoints, and inline projections
# run for new appends to es.events without es.projection_sync_triggers().
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);


my $node = PostgreSQL::Test::Cluster->new('dump_all');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');

# Stores, read models, handlers, projections, routes, groups and subscriptions come first, so
# that every event below is projected and published.
$node->safe_psql('src', q{
	CREATE EXTENSION pg_eventstore;
	CREATE SCHEMA app;
	SELECT es.create_event_table('app.orders');

	-- One read-model row per applied event: duplicates and misses both show.
	CREATE TABLE app.rm_inline (store text, global_position bigint, event_type text);
	CREATE TABLE app.rm_async (global_position bigint, stream_id text, event_type text);
	CREATE FUNCTION app.inline_events(e es.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO app.rm_inline VALUES ('es.events', (e).global_position, (e).event_type) $$;
	CREATE FUNCTION app.inline_orders(e es.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO app.rm_inline VALUES ('app.orders', (e).global_position, (e).event_type) $$;
	CREATE FUNCTION app.async_apply(e es.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO app.rm_async VALUES ((e).global_position, (e).stream_id, (e).event_type) $$;
	CREATE FUNCTION app.async_reset() RETURNS void LANGUAGE sql AS $$ DELETE FROM app.rm_async $$;
	CREATE FUNCTION app.count_events(state jsonb, e es.event) RETURNS jsonb LANGUAGE sql AS
		$$ SELECT jsonb_build_object('n', coalesce((state->>'n')::int, 0) + 1) $$;
	CREATE MATERIALIZED VIEW app.mv_streams AS
		SELECT stream_id, count(*) AS events, max(global_position) AS last_position
		  FROM es.events GROUP BY stream_id;
	CREATE UNIQUE INDEX ON app.mv_streams (stream_id);

	SELECT es.projection_create('inline_events', 'app.inline_events(es.event)', mode => 'inline');
	SELECT es.projection_create('inline_orders', 'app.inline_orders(es.event)', 'app.orders',
	                            mode => 'inline');
	SELECT es.projection_create('async_events', 'app.async_apply(es.event)',
	                            reset_handler => 'app.async_reset()');
	SELECT es.projection_create_matview('mv_streams', 'app.mv_streams');

	SELECT es.outbox_route('ev');
	SELECT es.outbox_route('orders', 'app.orders', ARRAY['Placed', 'Paid']);
	SELECT es.outbox_subscribe('g1', 'ev', max_attempts => 2);
	SELECT es.outbox_subscribe('g2', 'ev');
	SELECT es.outbox_subscribe('g1', 'orders');
	SELECT es.outbox_subscribe('g1', 'manual');

	SELECT es.subscription_create('sub_all');
	SELECT es.subscription_create('sub_paid', 'app.orders', ARRAY['Paid']);
});

# Events: s1..s10 in es.events (messages m1..m10 of topic ev, one key each), orders, keys.
$node->safe_psql('src', q{
	SELECT es.append_event('s' || i, 0, 'Opened', jsonb_build_object('i', i),
	                       idempotency_key => 'open/' || i)
	  FROM generate_series(1, 10) i;
	SELECT es.append('o1', 0, '[{"type":"Placed"},{"type":"Paid"},{"type":"Shipped"}]', 'o1/all',
	                 'app.orders');
	SELECT es.append('o2', 0, '[{"type":"Placed"}]', 'o2/place', 'app.orders');
	SELECT es.append('o3', 0, '[{"type":"Placed"},{"type":"Paid"}]', NULL, 'app.orders');
	SELECT es.outbox_publish('manual', '{"hello":"world"}');
	SELECT es.outbox_publish('manual', '{"n":2}', 'k');
});

# Message ids by key, for the claims below.
my %msg = split /[|\n]/, $node->safe_psql('src',
	q{SELECT key, id FROM es._outbox_messages WHERE topic = 'ev' ORDER BY id});
is(scalar(keys %msg), 10, 'ten events published to topic ev');
sub ids { return join(',', map { $msg{$_} } @_); }
# Claims of one message each: each gets the oldest message the group may have (a claim of
# several may take messages of one shard before older ones of another; order is per key).
sub claim
{
	my ($db, $group, $topic, $count, $lease) = @_;
	my @got;
	for (1 .. $count)
	{
		my $one = $node->safe_psql($db,
			"SELECT id || '|' || coalesce(key, '-') || ':' || attempts"
			  . " FROM es.outbox_claim('$group', '$topic', 1, '$lease')");
		last if $one eq '';
		push @got, [ split /\|/, $one ];
	}
	return join(',', map { $_->[1] } sort { $a->[0] <=> $b->[0] } @got);
}

# g1 on ev (max_attempts 2): s1, s2 acked; s3 waits an hour for its retry; s4 dead after two
# attempts; s5, s6 in flight for an hour; s7, s8 in flight for one second; s9, s10 untaken.
is(claim('src', 'g1', 'ev', 4, '1 hour'), 's1:1,s2:1,s3:1,s4:1', 'g1 claims s1..s4');
$node->safe_psql('src', 'SELECT es.outbox_ack(\'g1\', ARRAY[' . ids('s1', 's2') . '])');
$node->safe_psql('src', "SELECT es.outbox_nack('g1', $msg{s3}, 'try later', '1 hour')");
$node->safe_psql('src', "SELECT es.outbox_nack('g1', $msg{s4}, 'first failure', '0')");
is(claim('src', 'g1', 'ev', 1, '1 hour'), 's4:2', 'g1 gets s4 again');
$node->safe_psql('src', "SELECT es.outbox_nack('g1', $msg{s4}, 'second failure')");
is(claim('src', 'g1', 'ev', 2, '1 hour'), 's5:1,s6:1', 'g1 claims s5, s6 for an hour');
is(claim('src', 'g1', 'ev', 2, '1 second'), 's7:1,s8:1', 'g1 claims s7, s8 for a second');
# g2 on ev: s1 acked, s2 and s3 in flight for an hour, the rest untaken.
is(claim('src', 'g2', 'ev', 3, '1 hour'), 's1:1,s2:1,s3:1', 'g2 claims s1..s3');
$node->safe_psql('src', "SELECT es.outbox_ack('g2', ARRAY[$msg{s1}])");
# g1 on orders: o1 (two messages in one lane: Placed, then Paid waiting behind it), o2, o3.
is(claim('src', 'g1', 'orders', 10, '1 hour'), 'o1:1,o2:1,o3:1', 'g1 claims the head of each order');
$node->safe_psql('src', q{
	SELECT es.outbox_ack('g1', ARRAY(SELECT id FROM es._outbox_messages
	                                  WHERE topic = 'orders' AND key = 'o2'));
});
is( $node->safe_psql('src',
		q{SELECT string_agg(consumer_group || ':' || key || ':' || attempts || ':' || last_error, ',')
		    FROM es.outbox_dead_letters}),
	'g1:s4:2:second failure',
	'source: one dead letter');

# Subscriptions, async projection half done, matview refreshed, snapshots.
$node->safe_psql('src', q{
	SELECT es.subscription_ack('sub_all', 4);
	SELECT es.subscription_ack('sub_paid', (SELECT global_position FROM app.orders
	                                         WHERE stream_id = 'o1' AND event_type = 'Paid'));
	SELECT es.projection_refresh('async_events', 6);
	SELECT es.projection_refresh('mv_streams');
	SELECT es.snapshot_save('s1', 1, '{"n":1}');
	SELECT es.snapshot_save('o1', 2, '{"n":2}', 'app.orders', 'app.count_events(jsonb,es.event)');
});
is($node->safe_psql('src', 'SELECT count(*) FROM app.rm_async'), '6', 'source: async projection applied 6 events');

# Everything that must survive, as text. Sequences: last_value (is_called shows in the value
# the next nextval returns, so both are compared).
my %query = (
	events => q{SELECT global_position, stream_id, stream_version, event_id, event_type, data,
	                   metadata, recorded_at FROM es.events ORDER BY global_position},
	orders => q{SELECT global_position, stream_id, stream_version, event_id, event_type, data,
	                   metadata, recorded_at FROM app.orders ORDER BY global_position},
	versions => q{SELECT stream_id, es.stream_version(stream_id) FROM es.events
	               GROUP BY stream_id ORDER BY stream_id},
	keys => q{SELECT * FROM es._idempotency_keys ORDER BY store::text, key},
	# es.events's own row is made by CREATE EXTENSION, not restored: its created_at is new.
	stores => q{SELECT store, position_seq, builtin, CASE WHEN NOT builtin THEN created_at END
	              FROM es._stores ORDER BY store::text},
	sequences => q{SELECT (SELECT last_value || '/' || is_called FROM es.events_position_seq),
	                      (SELECT last_value || '/' || is_called FROM app.orders_position_seq),
	                      (SELECT last_value || '/' || is_called FROM es._outbox_messages_id_seq)},
	routes => q{SELECT * FROM es._outbox_routes ORDER BY topic},
	messages => q{SELECT * FROM es._outbox_messages ORDER BY id},
	groups => q{SELECT * FROM es._outbox_groups ORDER BY group_id},
	lanes => q{SELECT * FROM es._outbox_lanes ORDER BY group_id, head_id},
	dead => q{SELECT * FROM es._outbox_dead ORDER BY group_id, message_id},
	marks => q{SELECT * FROM es._outbox_marks ORDER BY group_id, marked_at},
	dead_letters => q{SELECT * FROM es.outbox_dead_letters ORDER BY consumer_group, id},
	subscriptions => q{SELECT * FROM es._subscriptions ORDER BY name},
	projections => q{SELECT * FROM es._projections ORDER BY name},
	snapshots => q{SELECT * FROM es._snapshots ORDER BY store::text, stream_id, version},
	rm_inline => q{SELECT * FROM app.rm_inline ORDER BY store, global_position},
	rm_async => q{SELECT * FROM app.rm_async ORDER BY global_position},
	matview => q{SELECT * FROM app.mv_streams ORDER BY stream_id},
	sub_next => q{SELECT name, string_agg(global_position::text, ',' ORDER BY global_position)
	                FROM (SELECT 'sub_all' AS name, * FROM es.subscription_next('sub_all', 1000)
	                      UNION ALL
	                      SELECT 'sub_paid', * FROM es.subscription_next('sub_paid', 1000)) n
	               GROUP BY name ORDER BY name},
	snapshot_load => q{SELECT * FROM es.snapshot_load('o1', 'app.orders', 'app.count_events(jsonb,es.event)')},
	user_triggers => q{SELECT tgname, tgenabled FROM pg_trigger
	                    WHERE tgrelid = 'app.orders'::regclass ORDER BY tgname},
);
my %before = map { $_ => $node->safe_psql('src', $query{$_}) } keys %query;
is(scalar(split /\n/, $before{lanes}), 9, 'source: nine lanes outstanding');
is(scalar(split /\n/, $before{keys}), 12, 'source: twelve idempotency keys');

# Dump; restore into a fresh database and into a fresh second cluster.
my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst'), $dump ],
	'pg_restore into a fresh database');

my $other = PostgreSQL::Test::Cluster->new('dump_all_target');
$other->init;
$other->start;
$other->safe_psql('postgres', 'CREATE DATABASE dst');
$other->command_ok([ 'pg_restore', '--exit-on-error', '-d', $other->connstr('dst'), $dump ],
	'pg_restore into a fresh cluster');

for my $what (sort keys %query)
{
	is($node->safe_psql('dst', $query{$what}), $before{$what}, "$what restored");
	is($other->safe_psql('dst', $query{$what}), $before{$what}, "$what restored in the other cluster");
}

# The store triggers: the user store's come from the dump; on es.events (an extension table,
# whose triggers pg_dump leaves out) the route trigger is re-created by the restored route and
# the inline projection trigger is restored disabled, to be enabled by the first append.
my $events_triggers = q{SELECT string_agg(tgname || '=' || tgenabled::text, ',' ORDER BY tgname)
                          FROM pg_trigger WHERE tgrelid = 'es.events'::regclass
                           AND tgname IN ('es_outbox_route', 'es_projection_inline')};
is($node->safe_psql('src', $events_triggers), 'es_outbox_route=O,es_projection_inline=O',
	'source: route and inline triggers on es.events');
is($node->safe_psql('dst', $events_triggers), 'es_outbox_route=O,es_projection_inline=D',
	'restored: route trigger enabled, inline trigger waiting for the first append');

# ---- The restored database goes on. ----
my $dst = 'dst';
sub q_dst { return $node->safe_psql($dst, $_[0]); }

# Idempotent replays are duplicates and write nothing (and publish nothing).
my $count_all = q{SELECT (SELECT count(*) FROM es.events), (SELECT count(*) FROM app.orders),
                         (SELECT count(*) FROM es._outbox_messages)};
my $counts = q_dst($count_all);
is(q_dst(q{SELECT duplicate, first_position FROM es.append_event('s3', 0, 'Opened', '{"i":3}',
                                                                 idempotency_key => 'open/3')}),
	't|' . $node->safe_psql('src', q{SELECT global_position FROM es.events WHERE stream_id = 's3'}),
	'replay in es.events is a duplicate with the original position');
is(q_dst(q{SELECT duplicate FROM es.append('o1', 0, '[{"type":"Placed"},{"type":"Paid"},{"type":"Shipped"}]',
                                           'o1/all', 'app.orders')}),
	't', 'replay in the user store is a duplicate');
is(q_dst($count_all), $counts, 'replays wrote and published nothing');

# New appends land above every restored position and every position the source handed out.
my ($max_ev, $seq_ev) = split /\|/, $node->safe_psql('src',
	q{SELECT max(global_position), (SELECT last_value FROM es.events_position_seq) FROM es.events});
my ($max_or, $seq_or) = split /\|/, $node->safe_psql('src',
	q{SELECT max(global_position), (SELECT last_value FROM app.orders_position_seq) FROM app.orders});
my $new_ev = q_dst(q{SELECT first_position FROM es.append_event('s1', 1, 'Closed', '{}')});
cmp_ok($new_ev, '>', $max_ev, "es.events: new position $new_ev above the restored max $max_ev");
cmp_ok($new_ev, '>', $seq_ev, 'es.events: and above the source sequence');
my $new_or = q_dst(q{SELECT first_position FROM es.append_event('o4', 0, 'Placed', '{}', store => 'app.orders')});
cmp_ok($new_or, '>', $max_or, "app.orders: new position $new_or above the restored max $max_or");
cmp_ok($new_or, '>', $seq_or, 'app.orders: and above the source sequence');
my $max_msg = $node->safe_psql('src', q{SELECT max(id) FROM es._outbox_messages});

# Routed appends are published exactly once, with ids above every restored message.
is( q_dst(qq{SELECT count(*), min(id) > $max_msg FROM es._outbox_messages
              WHERE topic = 'ev' AND (headers->>'global_position')::bigint = $new_ev}),
	'1|t', 'the new es.events event is published once, above the restored ids');
is( q_dst(qq{SELECT count(*), min(id) > $max_msg FROM es._outbox_messages
              WHERE topic = 'orders' AND (headers->>'global_position')::bigint = $new_or}),
	'1|t', 'the new app.orders event is published once, above the restored ids');

# Inline projections ran for the new events (es.events without es.projection_sync_triggers)
# and the restored events were not projected again.
is($node->safe_psql('dst', $events_triggers), 'es_outbox_route=O,es_projection_inline=O',
	'the first append enabled the inline trigger of es.events');
is( q_dst(q{SELECT store, count(*), count(DISTINCT global_position) FROM app.rm_inline
             GROUP BY store ORDER BY store}),
	"app.orders|7|7\nes.events|11|11", 'inline read model: one row per event, new ones included');
is( q_dst(q{SELECT count(*) FROM es.events e
             WHERE NOT EXISTS (SELECT 1 FROM app.rm_inline r
                                WHERE r.store = 'es.events' AND r.global_position = e.global_position)}),
	'0', 'every es.events event is in the inline read model');

# Outbox claims after the restore: g1 gets the expired leases s7, s8 again (second attempt),
# the untaken s9, s10 and the new s1 event (its key s1 was acked); never the acked s1, s2, the
# dead s4, s3 waiting for its retry or s5, s6 under a live lease.
my $lease_end = $node->safe_psql('src',
	qq{SELECT extract(epoch FROM due_at) FROM es._outbox_lanes WHERE head_id = $msg{s7}
	     AND group_id = (SELECT group_id FROM es._outbox_groups WHERE consumer_group = 'g1' AND topic = 'ev')});
usleep(100_000) while q_dst("SELECT extract(epoch FROM clock_timestamp()) <= $lease_end") eq 't';
is(claim($dst, 'g1', 'ev', 100, '1 hour'), 's7:2,s8:2,s9:1,s10:1,s1:1',
	'g1 gets exactly the expired leases, the untaken and the new message');
is(claim($dst, 'g2', 'ev', 100, '1 hour'), 's4:1,s5:1,s6:1,s7:1,s8:1,s9:1,s10:1,s1:1',
	'g2 gets everything after its in-flight s2, s3, not the acked s1');
is(claim($dst, 'g1', 'orders', 100, '1 hour'), 'o4:1',
	'orders: o1 still in flight (Paid behind it), o2 acked, o3 in flight: only the new o4');
is(claim($dst, 'g1', 'manual', 100, '1 hour'), '-:1,k:1', 'manual topic: both messages, first attempt');
# Acking a restored in-flight message works and lets the next one of its key through.
q_dst(q{SELECT es.outbox_ack('g1', ARRAY(SELECT id FROM es._outbox_messages
                                         WHERE topic = 'orders' AND key = 'o1' AND headers->>'event_type' = 'Placed'))});
is(claim($dst, 'g1', 'orders', 100, '1 hour'), 'o1:1', 'acking restored o1/Placed releases o1/Paid');
# The retry and the dead letter come back as they were.
is( q_dst(qq{SELECT attempts, last_error, due_at > now() + interval '50 minutes' FROM es._outbox_lanes
              WHERE head_id = $msg{s3} AND group_id = (SELECT group_id FROM es._outbox_groups
                                                        WHERE consumer_group = 'g1' AND topic = 'ev')}),
	'1|try later|t', 's3 still waits for its retry');
is(q_dst(q{SELECT es.outbox_retry_dead('g1')}), '1', 'the restored dead letter can be re-driven');
is(claim($dst, 'g1', 'ev', 100, '1 hour'), 's4:1', 'and is handed out again');

# Subscriptions resume after their checkpoints: the restored pages plus the new events.
is( q_dst(q{SELECT string_agg(global_position::text, ',' ORDER BY global_position)
              FROM es.subscription_next('sub_all', 1000)}),
	$node->safe_psql('src', q{SELECT string_agg(global_position::text, ',' ORDER BY global_position)
	                            FROM es.subscription_next('sub_all', 1000)}) . ",$new_ev",
	'sub_all continues after its checkpoint, then the new event');

# The async projection applies only the events after its checkpoint; the matview refreshes.
is(q_dst(q{SELECT es.projection_refresh('async_events')}),
	q_dst(q{SELECT count(*) - 6 FROM es.events}), 'async refresh applies only the remaining events');
is( q_dst(q{SELECT count(*) = (SELECT count(*) FROM es.events), count(DISTINCT global_position) = count(*)
              FROM app.rm_async}),
	't|t', 'async read model: one row per event');
cmp_ok(q_dst(q{SELECT es.projection_refresh('mv_streams')}), '>', 0, 'matview refreshed after new events');
is(q_dst(q{SELECT events, last_position FROM app.mv_streams WHERE stream_id = 's1'}),
	"2|$new_ev", 'matview sees the new event');
is( q_dst(q{SELECT string_agg(name || '=' || (lag_events = 0), ',' ORDER BY name) FROM es.projections}),
	'async_events=true,inline_events=true,inline_orders=true,mv_streams=true',
	'every projection is caught up');

# Snapshots and state: the restored snapshot is used, by reducer.
is( q_dst(q{SELECT es.aggregate_state('o1', 'app.count_events(jsonb,es.event)', '{}', store => 'app.orders')}),
	'{"n": 3}', 'aggregate_state folds from the restored snapshot');

# Without the automatic enabling: in the other cluster, a plain INSERT into es.events (not
# es.append) does not run the disabled trigger; es.projection_sync_triggers() enables it.
$other->safe_psql('dst', q{INSERT INTO es.events (stream_id, stream_version, event_type) VALUES ('s9', 2, 'Plain')});
is($other->safe_psql('dst', q{SELECT count(*) FROM app.rm_inline WHERE event_type = 'Plain'}),
	'0', 'a plain INSERT before any append is not projected inline');
$other->safe_psql('dst', q{SELECT es.projection_sync_triggers()});
is($other->safe_psql('dst', $events_triggers), 'es_outbox_route=O,es_projection_inline=O',
	'es.projection_sync_triggers() enables it');
$other->safe_psql('dst', q{INSERT INTO es.events (stream_id, stream_version, event_type) VALUES ('s9', 3, 'Plain')});
is($other->safe_psql('dst', q{SELECT count(*) FROM app.rm_inline WHERE event_type = 'Plain'}),
	'1', 'then plain INSERTs are projected');

# Two first appends at once after a restore: the one that enables the trigger holds SHARE ROW
# EXCLUSIVE on es.events until it commits; the other waits for it, then finds the trigger
# enabled. Both events are projected, once.
$node->safe_psql('postgres', 'CREATE DATABASE dst3');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst3'), $dump ],
	'pg_restore into a third database');
my $first = $node->background_psql('dst3');
$first->query_safe(q{BEGIN; SELECT es.append_event('c1', 0, 'Concurrent', '{}')});
my $second = $node->background_psql('dst3');
$second->query_until(qr/started/, q{\echo started
SELECT es.append_event('c2', 0, 'Concurrent', '{}');
});
ok( $node->poll_query_until('dst3',
		q{SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted
		                  AND relation = 'es.events'::regclass AND mode = 'ShareRowExclusiveLock')}),
	'the second first-append waits for the one enabling the trigger');
$first->query_safe('COMMIT');
$second->query_safe('SELECT 1');
$first->quit;
$second->quit;
is( $node->safe_psql('dst3',
		q{SELECT count(*), count(DISTINCT global_position) FROM app.rm_inline WHERE event_type = 'Concurrent'}),
	'2|2', 'both concurrent first appends are projected once');
is($node->safe_psql('dst3', $events_triggers), 'es_outbox_route=O,es_projection_inline=O',
	'and the trigger is enabled');

$other->stop;
$node->stop;
done_testing();
