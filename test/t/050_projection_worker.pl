# The background refresh of async projections (pg_eventstore.projection_worker): off by default
# (nothing is refreshed until es.projection_refresh); once turned on with a reload, the relay
# keeps an async projection current shortly after appends, running its handler as the role
# that registered the projection (never as the relay's superuser); a failing handler gets
# last_error and neither stops the relay's notifications nor the other projections.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('projection_worker');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_eventstore;
	CREATE ROLE proj_owner LOGIN IN ROLE es_admin;
	CREATE TABLE secret (x int);
	CREATE SCHEMA app AUTHORIZATION proj_owner;
	SET ROLE proj_owner;
	CREATE TABLE app.seen (position bigint, type text, as_user name);
	CREATE FUNCTION app.on_event(e es.event) RETURNS void LANGUAGE sql
	    AS $$ INSERT INTO app.seen VALUES (e.global_position, e.event_type, current_user) $$;
	-- Fails on every 'Peek' event: proj_owner may not read the superuser's table.
	CREATE FUNCTION app.peek(e es.event) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
	    IF e.event_type = 'Peek' THEN PERFORM count(*) FROM public.secret; END IF;
	END $$;
	-- Tries to leave the owner's identity on every 'Peek' event.
	CREATE FUNCTION app.escape(e es.event) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
	    IF e.event_type = 'Peek' THEN
	        RESET ROLE;
	        INSERT INTO app.seen VALUES (-1, 'escaped', current_user);
	    END IF;
	END $$;
	SELECT es.projection_create('seen', 'app.on_event(es.event)');
	SELECT es.projection_create('peek', 'app.peek(es.event)');
	SELECT es.projection_create('escape', 'app.escape(es.event)');
	RESET ROLE;
});

is($node->safe_psql('postgres', q{SELECT string_agg(name || '=' || owner::text, ' ' ORDER BY name)
                                    FROM es._projections}),
	'escape=proj_owner peek=proj_owner seen=proj_owner', 'the registry records the registering role');
my ($ret, $out, $err) = $node->psql('postgres', q{
	SET ROLE proj_owner;
	INSERT INTO es._projections (name, store, mode, handler, owner)
	VALUES ('forged', 'es.events', 'async', 'app.on_event(es.event)', 'postgres')});
like($err, qr/row-level security/, 'a projection cannot be registered under a role one cannot become');

# Waits (up to 10 s) until `sql` returns `want` (a string or a qr//); returns the last value.
sub wait_for
{
	my ($sql, $want) = @_;
	my $got;
	for (1 .. 200)
	{
		$got = $node->safe_psql('postgres', $sql);
		return $got if ref $want ? $got =~ $want : $got eq $want;
		select(undef, undef, undef, 0.05);
	}
	return $got;
}

# Off by default: appends do not move the projection.
$node->safe_psql('postgres', q{SELECT es.append_event('s-1', 0, 'Opened', '{}')});
sleep 2;
is($node->safe_psql('postgres', 'SELECT count(*) FROM app.seen'), '0',
	'off by default: the relay leaves projections alone');

$node->append_conf('postgresql.conf', 'pg_eventstore.projection_worker = on');
$node->reload;
is(wait_for('SELECT string_agg(position || type || as_user, \' \' ORDER BY position) FROM app.seen',
		'1Openedproj_owner'),
	'1Openedproj_owner', 'turned on: the backlog is applied, as the owner');

my $listener = $node->background_psql('postgres');
my $channel = $node->safe_psql('postgres', q{SELECT es.store_channel()});
$listener->query_safe("LISTEN $channel");
my $relay_pid = $node->safe_psql('postgres', 'SELECT pid FROM es.relay_status()');

$node->safe_psql('postgres', q{SELECT es.append_event('s-1', 1, 'Peek', '{}');
                               SELECT es.append_event('s-1', 2, 'Closed', '{}')});
is(wait_for('SELECT count(*) FROM app.seen', '3'), '3',
	'new events reach the read model shortly after the append');
my $error_of = q{SELECT coalesce(last_error, '') || ' @' || coalesce(failed_position, 0)
                   FROM es.projections WHERE name = '%s'};
like(wait_for(sprintf($error_of, 'peek'), qr/\@2$/),
	qr/^42501: permission denied for table secret \@2$/,
	'the failing handler ran as its owner, and its error is recorded');
like(wait_for(sprintf($error_of, 'escape'), qr/\@2$/),
	qr/^42501: cannot set parameter "role" within security-definer function \@2$/,
	'a handler cannot RESET ROLE back to the relay\'s superuser');
is($node->safe_psql('postgres', q{SELECT position FROM es.projections WHERE name = 'peek'}),
	'1', 'its checkpoint stops before the failing event');

$node->safe_psql('postgres', q{SELECT es.append_event('s-2', 0, 'Opened', '{}')});
is(wait_for('SELECT max(position) FROM app.seen', '4'), '4',
	'the other projection keeps up after the error');
my $notes = $listener->query_safe('SELECT 1');
like($listener->{stdout} . $notes, qr/Asynchronous notification "$channel" with payload "4"/,
	'the relay keeps notifying');
is($node->safe_psql('postgres', 'SELECT pid FROM es.relay_status()'), $relay_pid,
	'the same relay throughout');
$listener->quit;

$node->stop;
done_testing();
