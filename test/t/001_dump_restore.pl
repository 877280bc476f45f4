# pg_dump / pg_restore round trip (API.md §8): every event (es.events and a user event table),
# every stream version and idempotency key comes back; after the restore an idempotent replay
# is still a duplicate, and a new append gets a position above every restored one.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;


my $node = PostgreSQL::Test::Cluster->new('dump_restore');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION pg_eventstore;
	CREATE SCHEMA app;
	SELECT es.create_event_table('app.orders');
	SELECT es.create_event_table('app."Audit Log"');
});

# Events in three stores, with idempotency keys, supplied ids, metadata, a batch, a plain
# INSERT, and positions burnt by failed and rolled-back appends (gaps).
$node->safe_psql('src', q{
	SELECT es.append('acc-1', 0, '[{"type":"Opened","data":{"owner":"ann"},"metadata":{"ip":"10.0.0.1"}}]', 'acc-1/open');
	SELECT es.append('acc-1', 1, '[{"type":"Deposited","data":{"eur":10}},{"type":"Deposited","data":{"eur":5}}]', 'acc-1/dep');
	SELECT es.append('acc-2', 0, '[{"type":"Opened","id":"0190a6c2-4f5e-7abc-8def-0123456789ab"}]');
	SELECT es.append('acc-2', NULL, '[{"type":"Noted","data":null}]');
	SELECT es.append('order-1', 0, '[{"type":"Placed","data":{"items":[1,2,3]}}]', 'order-1/place', 'app.orders');
	SELECT es.append('order-1', 1, '[{"type":"Paid"}]', NULL, 'app.orders');
	INSERT INTO app.orders (stream_id, stream_version, event_type, data) VALUES ('order-1', 3, 'Shipped', '{"by":"plain insert"}');
	SELECT es.append('order-2', 0, '[{"type":"Placed"}]', 'order-2/place', 'app.orders');
	SELECT es.append('audit', 0, '[{"type":"Login"},{"type":"Logout"}]', 'audit/1', 'app."Audit Log"');
	-- The last positions handed out were rolled back: each sequence is ahead of its table.
	BEGIN;
	SELECT es.append('acc-3', 0, '[{"type":"Opened"}]');
	SELECT es.append('order-3', 0, '[{"type":"Placed"},{"type":"Placed"}]', NULL, 'app.orders');
	ROLLBACK;
});
my ($ret, $out, $err) = $node->psql('src',
	q{SELECT es.append('acc-1', 0, '[{"type":"Conflict"}]')});
like($err, qr/wrong expected version/, 'source: a conflicting append fails');

# Everything that must survive, as text.
my %query = (
	events => q{SELECT global_position, stream_id, stream_version, event_id, event_type, data,
	                   metadata, recorded_at FROM es.events ORDER BY global_position},
	orders => q{SELECT global_position, stream_id, stream_version, event_id, event_type, data,
	                   metadata, recorded_at FROM app.orders ORDER BY global_position},
	audit => q{SELECT global_position, stream_id, stream_version, event_id, event_type, data,
	                  metadata, recorded_at FROM app."Audit Log" ORDER BY global_position},
	keys => q{SELECT store, key, stream_id, fingerprint, first_version, last_version,
	                 first_position, last_position, created_at
	            FROM es._idempotency_keys ORDER BY store::text, key},
	stores => q{SELECT store, position_seq, builtin FROM es._stores ORDER BY store::text},
	versions => q{SELECT es.stream_version('acc-1'), es.stream_version('acc-2'),
	                     es.stream_version('order-1', 'app.orders'),
	                     es.stream_version('audit', 'app."Audit Log"')},
	guards => q{SELECT tgrelid::regclass, tgname, tgenabled FROM pg_trigger
	             WHERE tgname LIKE 'es\_%' ORDER BY tgrelid::regclass::text, tgname},
);
my %before = map { $_ => $node->safe_psql('src', $query{$_}) } keys %query;
is($before{versions}, '3|2|3|2', 'source stream versions');
is(scalar(split /\n/, $before{keys}), 5, 'source has five idempotency keys');

# Dump, restore into a fresh database.
my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', 'src', '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'dst', $dump ], 'pg_restore');

for my $what (sort keys %query)
{
	is($node->safe_psql('dst', $query{$what}), $before{$what}, "$what restored");
}

# An idempotent replay after the restore is a duplicate with the original result.
is( $node->safe_psql('dst',
		q{SELECT (r).* FROM (SELECT es.append('acc-1', 1, '[{"type":"Deposited","data":{"eur":10}},{"type":"Deposited","data":{"eur":5}}]', 'acc-1/dep') AS r) s}),
	$node->safe_psql('src',
		q{SELECT first_version, last_version, first_position, last_position, true
		    FROM es._idempotency_keys WHERE key = 'acc-1/dep'}),
	'replay in es.events returns the original result with duplicate = true');
is( $node->safe_psql('dst',
		q{SELECT duplicate, first_position FROM es.append('order-1', 0, '[{"type":"Placed","data":{"items":[1,2,3]}}]', 'order-1/place', 'app.orders')}),
	't|1', 'replay in a user event table is a duplicate');
is($node->safe_psql('dst', 'SELECT count(*) FROM es.events'),
	$node->safe_psql('src', 'SELECT count(*) FROM es.events'), 'replays wrote nothing');
# Reusing a restored key for other events is still refused.
($ret, $out, $err) = $node->psql('dst',
	q{SELECT es.append('acc-1', NULL, '[{"type":"Other"}]', 'acc-1/open')});
like($err, qr/idempotency key "acc-1\/open" was already used/, 'restored key refuses other events');

# New appends land above every restored position, with the next stream versions.
for my $store ('es.events', 'app.orders', 'app."Audit Log"')
{
	my $max = $node->safe_psql('dst', "SELECT max(global_position) FROM $store");
	my $seq_before = $node->safe_psql('src',
		"SELECT last_value FROM " . $node->safe_psql('src',
			"SELECT position_seq FROM es._stores WHERE store = '$store'::regclass"));
	my $new = $node->safe_psql('dst',
		"SELECT first_position FROM es.append('after-restore', 0, '[{\"type\":\"New\"}]', NULL, '$store')");
	cmp_ok($new, '>', $max, "$store: new append at $new is above restored max $max");
	cmp_ok($new, '>', $seq_before, "$store: and above every position the source handed out");
}
is( $node->safe_psql('dst',
		q{SELECT first_version FROM es.append('acc-1', 3, '[{"type":"Withdrawn"}]')}),
	'4', 'restored stream continues at the next version');
($ret, $out, $err) = $node->psql('dst',
	q{SELECT es.append('order-1', 2, '[{"type":"Stale"}]', NULL, 'app.orders')});
like($err, qr/expected 2, actual 3/, 'restored versions drive the expected-version check');

# The restored store keeps its guards and its global order reads everything.
($ret, $out, $err) = $node->psql('dst', 'DELETE FROM app.orders');
like($err, qr/DELETE is not allowed on event table app\.orders/, 'restored table is append-only');
is( $node->safe_psql('dst',
		q{SELECT count(*) FROM es.read_all(0, 1000, NULL, NULL, 'app.orders')}),
	$node->safe_psql('dst', 'SELECT count(*) FROM app.orders'),
	'read_all sees every restored event');
# Dropping a restored user store removes its keys (the registry came back with it).
$node->safe_psql('dst', q{SELECT es.drop_event_table('app."Audit Log"')});
is( $node->safe_psql('dst',
		q{SELECT count(*) FROM es._idempotency_keys WHERE key = 'audit/1'}),
	'0', 'restored store drops cleanly with its keys');

$node->stop;
done_testing();
