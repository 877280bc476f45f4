# Subscriptions and the notification relay across restarts and pg_dump/pg_restore (API.md §4,
# §8): checkpoints survive a clean restart, a crash (immediate stop) and a dump/restore; after a
# restart the relay is started again by the next append; store channels are the same after a
# restore; a running relay does not hold up DROP DATABASE.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);


my $node = PostgreSQL::Test::Cluster->new('subscriptions_relay');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION pg_eventstore;
	CREATE SCHEMA app;
	SELECT es.create_event_table('app.orders');
	SELECT es.append_event('order-' || i, 0, CASE WHEN i % 2 = 0 THEN 'Paid' ELSE 'Placed' END,
	                       jsonb_build_object('i', i), store => 'app.orders')
	  FROM generate_series(1, 10) i;
	SELECT es.append_event('acc-' || i, 0, 'Opened', '{}') FROM generate_series(1, 4) i;
	SELECT es.subscription_create('billing', 'app.orders', ARRAY['Paid'], 'order-');
	SELECT es.subscription_create('audit');
	SELECT es.subscription_create('late', 'app.orders', start_position => 7);
	SELECT es.subscription_ack('billing', 6);
	SELECT es.subscription_ack('audit', 3);
});

# name=position/lag. (Not the head: crash recovery moves sequences ahead by up to 32 unused
# values, so the head of es.events jumps while the lag, counted in events, does not.)
my $checkpoints = q{SELECT string_agg(format('%s=%s/%s', name, position, lag), ' '
                                      ORDER BY name) FROM es.subscriptions};
my $expected = 'audit=3/1 billing=6/4 late=7/3';
is($node->safe_psql('src', $checkpoints), $expected, 'checkpoints as acked');

# Wait until the relay of `db` runs (or not); returns whether it does.
sub relay_running
{
	my ($db, $want) = @_;
	for (1 .. 100)
	{
		my $running = $node->safe_psql($db, 'SELECT running FROM es.relay_status()');
		return $running eq 't' if ($running eq 't') == $want;
		select(undef, undef, undef, 0.05);
	}
	return !$want;
}
ok(relay_running('src', 1), 'the relay runs after appends and subscription_create');

$node->restart;
is($node->safe_psql('src', $checkpoints), $expected, 'checkpoints survive a restart');
ok(!relay_running('src', 0), 'no relay after the restart until something needs it');
$node->safe_psql('src', q{SELECT es.append_event('acc-9', 0, 'Opened', '{}')});
ok(relay_running('src', 1), 'the first append after the restart starts the relay');

# A crash: acks committed before it stay, the one in flight is gone.
$node->safe_psql('src', q{SELECT es.subscription_ack('audit', 4)});
my $in_flight = $node->background_psql('src');
$in_flight->query_safe(q{BEGIN; SELECT es.subscription_ack('late', 9)});
$node->stop('immediate');
$node->start;
$expected = 'audit=4/1 billing=6/4 late=7/3';
is($node->safe_psql('src', $checkpoints), $expected,
	'after a crash: committed acks kept, the uncommitted one lost');
eval { $in_flight->quit; };

is( $node->safe_psql('src', q{SELECT string_agg(global_position::text, ',')
                               FROM es.subscription_next('billing')}),
	'8,10', 'subscription_next continues after the checkpoint');

# pg_dump / pg_restore.
my $channel = $node->safe_psql('src', q{SELECT es.store_channel('app.orders')});
my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('dst'), $dump ], 'pg_restore');
is($node->safe_psql('dst', $checkpoints), $expected, 'checkpoints survive dump/restore');
is( $node->safe_psql('dst', q{SELECT string_agg(global_position::text, ',')
                               FROM es.subscription_next('billing')}),
	'8,10', 'the restored subscription continues where it was');
is($node->safe_psql('dst', q{SELECT es.store_channel('app.orders')}),
	$channel, 'the store channel is the same after the restore');
is( $node->safe_psql('dst', q{SELECT event_types::text || ' ' || stream_prefix
                               FROM es.subscriptions WHERE name = 'billing'}),
	'{Paid} order-', 'filters restored');
$node->safe_psql('dst', q{SELECT es.subscription_ack('billing', 10)});
is($node->safe_psql('dst', q{SELECT lag FROM es.subscriptions WHERE name = 'billing'}),
	'0', 'the restored subscription acks');

# DROP DATABASE does not wait for the relay.
$node->safe_psql('dst', q{SELECT es.relay_start()});
ok(relay_running('dst', 1), 'the relay of the restored database runs');
my $start = time();
$node->safe_psql('postgres', 'DROP DATABASE dst');
cmp_ok(time() - $start, '<', 4, 'DROP DATABASE with a running relay does not wait for it');

$node->stop;
done_testing();
