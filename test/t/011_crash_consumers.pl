# Crash safety of the consumers (API.md §4-§6): while a load client (test/stress/
# crash_consumers.cpp) publishes to the outbox (plain and routed appends, some rolled back),
# claims and acks/nacks with two consumer groups, tails a subscription and refreshes an async
# projection from two connections, the server is crashed at random moments, alternately by
# kill -9 of the postmaster and all its children and by `pg_ctl stop -m immediate`. The client
# logs every outcome only once the server confirmed it. After each restart, with no client
# running:
#   - every acknowledged publish and append is there, nothing rolled back is, and every routed
#     event has its outbox message;
#   - per consumer group, every message is acked (with an ack sent), in flight (in a lane),
#     dead-lettered or not yet taken in; an acknowledged ack is never undone, no message is
#     acked twice, none is handed out again after its ack;
#   - the subscription checkpoint did not move back, every event up to it was delivered, and
#     subscription_next returns exactly the events after it;
#   - the projection applied every event up to its checkpoint exactly once and nothing beyond,
#     and the checkpoint did not move back.
# Then one crash in the middle of a refresh of 50,000 pending events, and a final drain after
# which every message is acked or dead and every event was applied exactly once. Last, a head
# reported just before a crash is never undercut by a position committed after it.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep time);

my $root = $ENV{ES_ROOT} // dirname(dirname(dirname(__FILE__)));
my $rounds = $ENV{ES_CRASH_ROUNDS} // 6;    # half kill -9, half immediate stop
my $seed = $ENV{ES_CRASH_SEED} // time();
srand($seed);
note("seed $seed (ES_CRASH_SEED reproduces the crash moments)");

# The load client: built by CMakeLists.txt (every test/stress/*.cpp), or directly with g++
# when CMake cannot configure here.
my $work = PostgreSQL::Test::Utils::tempdir();
my $client = "$work/build/crash_consumers";
system("cmake -S '$root' -B '$work/build' -DCMAKE_BUILD_TYPE=RelWithDebInfo >'$work/cmake.log' 2>&1"
	  . " && cmake --build '$work/build' --target crash_consumers >>'$work/cmake.log' 2>&1");
if (!-x $client)
{
	my $inc = `pg_config --includedir`;
	my $lib = `pg_config --libdir`;
	chomp($inc, $lib);
	$client = "$work/crash_consumers";
	system("g++ -std=c++17 -O2 -I'$inc' '$root/test/stress/crash_consumers.cpp' -L'$lib' -lpq"
		  . " -pthread -o '$client' >>'$work/cmake.log' 2>&1");
}
ok(-x $client, 'load client built') or BAIL_OUT(slurp_file("$work/cmake.log"));

my $node = PostgreSQL::Test::Cluster->new('crash_consumers');
$node->init;
# fsync stays off (the framework's default): a killed process loses nothing the kernel has.
$node->append_conf('postgresql.conf', "max_connections = 40\nlog_min_messages = warning\n");
# test/run runs this file a second time with ES_TAP_PRELOAD=1: registrations in the extension's
# shared-memory slots instead of the lock table (src/pg/horizon.cpp).
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_eventstore'\n")
  if $ENV{ES_TAP_PRELOAD};
$node->start;
is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
   $ENV{ES_TAP_PRELOAD} ? 'pg_eventstore' : '', 'library preloaded as asked');
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_eventstore;
	-- The read model: one row per applied event, no constraint to hide a duplicate.
	CREATE TABLE public.rm (global_position bigint NOT NULL, event_id uuid NOT NULL);
	CREATE FUNCTION public.rm_apply(e es.event) RETURNS void LANGUAGE sql
	    AS 'INSERT INTO public.rm VALUES (e.global_position, e.event_id)';
	SELECT es.projection_create('rm', 'public.rm_apply(es.event)');
	SELECT es.outbox_route('crash', 'es.events', NULL, 'order-');
	SELECT es.outbox_subscribe('g1', 'crash', 10);
	SELECT es.outbox_subscribe('g2', 'crash', 2);
	SELECT es.subscription_create('sub');
});
my $connstr = $node->connstr('postgres');

# ---- what the clients were told, accumulated over every run ----------------------------

my (%pub, %pubrb, @app, @apprb);
my (%claim, %ack, %ackreq, %seen);    # claim/ack: group => id => [server µs]
my ($max_suback, $max_proj) = (0, 0);
my (@unexpected, %errors);
my %confirmed;                        # kind => acknowledged commits
my ($crashes, $prev_sub, $prev_proj) = (0, 0, 0);

# Reads one client log; returns how many lines of each kind it had.
sub read_log
{
	my ($file) = @_;
	my %n;
	open(my $fh, '<', $file) or return %n;
	while (my $line = <$fh>)
	{
		chomp $line;
		my ($kind, @f) = split / /, $line;
		next unless defined $kind;
		$n{$kind}++;
		if    ($kind eq 'pub')   { $pub{ $f[0] } = $f[1]; }
		elsif ($kind eq 'pubrb') { $pubrb{ $f[1] } = 1; }
		elsif ($kind eq 'app')   { push @app, [@f]; }
		elsif ($kind eq 'apprb') { push @apprb, [@f]; }
		elsif ($kind eq 'claim') { push @{ $claim{ $f[0] }{ $f[1] } }, $f[3]; }
		elsif ($kind eq 'ackreq') { $ackreq{ $f[0] }{ $f[1] } = 1; }
		elsif ($kind eq 'ack')   { push @{ $ack{ $f[0] }{ $f[1] } }, $f[2]; $n{"ack $f[0]"}++; }
		elsif ($kind eq 'seen')  { $seen{ $f[0] }++; }
		elsif ($kind eq 'suback') { $max_suback = $f[0] if $f[0] > $max_suback; }
		elsif ($kind eq 'proj')  { $max_proj = $f[0] if $f[0] > $max_proj; }
		elsif ($kind eq 'err')
		{
			# Deadlocks between appenders (and claims/acks) roll back and are retried; an ack
			# or nack may find its lease expired when the machine stalls. Anything else is a bug.
			$errors{ $f[1] }++;
			push @unexpected, $line unless $f[1] =~ /^(40P01|40001|ES042|ES043)$/;
		}
	}
	close($fh);
	$confirmed{publish} += ($n{pub} // 0);
	$confirmed{append} += ($n{app} // 0);
	$confirmed{rollback} += ($n{pubrb} // 0) + ($n{apprb} // 0);
	$confirmed{ack} += ($n{ack} // 0);
	$confirmed{nack} += ($n{nack} // 0);
	$confirmed{claim} += ($n{claim} // 0);
	$confirmed{suback} += ($n{suback} // 0);
	$confirmed{refresh} += ($n{proj} // 0);
	return %n;
}

sub rows
{
	my ($sql) = @_;
	return map { [ split /\|/, $_, -1 ] } grep { $_ ne '' } split /\n/, $node->safe_psql('postgres', $sql);
}

# Every process whose parent is the postmaster.
sub children_of
{
	my ($pid) = @_;
	my @kids;
	opendir(my $dh, '/proc') or die "cannot read /proc: $!";
	for my $p (grep { /^\d+$/ } readdir($dh))
	{
		open(my $fh, '<', "/proc/$p/stat") or next;
		my $stat = <$fh>;
		close($fh);
		push @kids, $p if defined $stat && $stat =~ /\)\s+\S+\s+(\d+)/ && $1 == $pid;
	}
	closedir($dh);
	return @kids;
}

sub crash
{
	my ($how) = @_;
	if ($how eq 'kill9')
	{
		my @kids = children_of($node->{_pid});
		$node->kill9;
		kill('KILL', @kids) if @kids;
		# The new postmaster refuses to start while an old backend is still attached.
		for (1 .. 200) { last unless grep { kill(0, $_) } @kids; usleep(25_000); }
	}
	else
	{
		$node->stop('immediate');
	}
	$crashes++;
}

# ---- the invariants ------------------------------------------------------------------------

sub reconcile
{
	my ($label, $final) = @_;

	# Publishes and appends.
	# Rolled-back calls are looked for by their tag: their ids and positions may be handed out
	# again after a crash (see crash_consumers.cpp).
	my %msg = map { $_->[0] => $_ } rows(q{
		SELECT id, coalesce(key, ''), coalesce(headers->>'global_position', ''),
		       coalesce(payload->>'t', payload->'data'->>'t', '')
		  FROM es._outbox_messages WHERE topic = 'crash'});
	my %routed = map { $_->[2] => 1 } grep { $_->[2] ne '' } values %msg;
	my %event = map { $_->[0] => $_->[1] } rows(q{SELECT global_position, coalesce(data->>'t', '') FROM es.events});
	my %tag_present = map { $_ => 1 } grep { $_ ne '' } (values %event, map { $_->[3] } values %msg);
	my @lost_pub = grep { !$msg{$_} || $msg{$_}[3] ne $pub{$_} } keys %pub;
	my @ghost_pub = grep { $tag_present{$_} } keys %pubrb;
	my (@lost_app, @ghost_app, @unrouted);
	for my $a (@app)
	{
		for my $p (split /,/, $a->[0])
		{
			push @lost_app, $p unless ($event{$p} // '') eq $a->[1];
			push @unrouted, $p if $a->[2] && !$routed{$p};
		}
	}
	push @ghost_app, grep { $tag_present{$_} } map { $_->[1] } @apprb;
	is("@lost_pub", '', "$label: every acknowledged publish is there");
	is("@ghost_pub", '', "$label: no rolled-back publish is");
	is("@lost_app", '', "$label: every acknowledged append is there");
	is("@ghost_app", '', "$label: no rolled-back append is");
	is("@unrouted", '', "$label: every acknowledged routed event has its outbox message");

	# Consumer groups.
	my %by_key;
	push @{ $by_key{ $_->[1] } }, $_->[0] for grep { $_->[1] ne '' } values %msg;
	my @ids = sort { $a <=> $b } keys %msg;
	for my $g (rows('SELECT consumer_group, group_id, start_id, es._outbox_intake_id(group_id) FROM es._outbox_groups ORDER BY 1'))
	{
		my ($name, $gid, $start, $intake) = @$g;
		my %out;
		for my $l (rows("SELECT coalesce(lane_key, ''), head_id, tail_id FROM es._outbox_lanes WHERE group_id = $gid"))
		{
			my ($key, $head, $tail) = @$l;
			if ($key eq '') { $out{$head} = 1; next; }
			$out{$_} = 1 for grep { $_ >= $head && $_ <= $tail } @{ $by_key{$key} // [] };
		}
		my %dead = map { $_->[0] => 1 } rows("SELECT message_id FROM es._outbox_dead WHERE group_id = $gid");
		my %n = map { $_ => 0 } qw(pending dead inflight recorded unconfirmed);
		my @bad;
		for my $id (grep { $_ > $start } @ids)
		{
			my $acked = $ack{$name}{$id};
			if ($id > $intake) { $n{pending}++; push @bad, "$id acked but never taken in" if $acked; }
			elsif ($dead{$id}) { $n{dead}++; push @bad, "$id acked and dead" if $acked; }
			elsif ($out{$id}) { $n{inflight}++; push @bad, "$id acked but outstanding again" if $acked; }
			elsif ($acked) { $n{recorded}++; }
			elsif ($ackreq{$name}{$id}) { $n{unconfirmed}++; }
			else { push @bad, "$id lost (gone, never acked)"; }
		}
		for my $id (sort { $a <=> $b } keys %{ $ack{$name} // {} })
		{
			my @acks = @{ $ack{$name}{$id} };
			push @bad, "$id unknown but acked" unless $msg{$id};
			push @bad, "$id acked " . scalar(@acks) . " times" if @acks > 1;
			my ($first_ack) = sort { $a <=> $b } @acks;
			push @bad, "$id handed out again after its ack"
			  if grep { $_ > $first_ack } @{ $claim{$name}{$id} // [] };
		}
		is(join('; ', @bad[ 0 .. ($#bad < 9 ? $#bad : 9) ]), '',
			"$label: group $name: no message lost, none acked twice or after its ack");
		note(sprintf('%s: group %s: %d acked (%d with the COMMIT unconfirmed), %d in flight, %d dead, %d not taken in',
				$label, $name, $n{recorded} + $n{unconfirmed}, $n{unconfirmed}, $n{inflight}, $n{dead}, $n{pending}));
		if ($final)
		{
			is($n{inflight} + $n{pending}, 0, "$label: group $name: nothing outstanding after the drain");
			cmp_ok($n{recorded}, '>', 0, "$label: group $name acked messages");
		}
	}

	# Subscription.
	my $sub = $node->safe_psql('postgres', q{SELECT position FROM es._subscriptions WHERE name = 'sub'});
	cmp_ok($sub, '>=', $max_suback, "$label: subscription checkpoint $sub >= every acknowledged ack ($max_suback)");
	cmp_ok($sub, '>=', $prev_sub, "$label: subscription checkpoint did not move back");
	my @undelivered = grep { $_ <= $sub && !$seen{$_} } sort { $a <=> $b } keys %event;
	is(scalar(@undelivered), 0, "$label: every event up to the checkpoint was delivered")
	  or diag("undelivered: @undelivered[0 .. ($#undelivered < 9 ? $#undelivered : 9)]");
	is( $node->safe_psql('postgres', q{
			SELECT count(*) || ' ' || coalesce(md5(string_agg(global_position::text, ',')), '')
			  FROM es.subscription_next('sub', 1000000)}),
		$node->safe_psql('postgres', qq{
			SELECT count(*) || ' ' || coalesce(md5(string_agg(global_position::text, ',' ORDER BY global_position)), '')
			  FROM es.events WHERE global_position > $sub}),
		"$label: subscription_next returns exactly the events after the checkpoint, in order");
	$prev_sub = $sub;

	# Projection.
	my $proj = $node->safe_psql('postgres', q{SELECT position FROM es._projections WHERE name = 'rm'});
	cmp_ok($proj, '>=', $max_proj, "$label: projection checkpoint $proj >= every confirmed one ($max_proj)");
	cmp_ok($proj, '>=', $prev_proj, "$label: projection checkpoint did not move back");
	is( $node->safe_psql('postgres', qq{
			SELECT (SELECT count(*) FROM (SELECT 1 FROM public.rm GROUP BY global_position HAVING count(*) > 1) d)
			    || ' ' || (SELECT count(*) FROM public.rm WHERE global_position > $proj)
			    || ' ' || (SELECT count(*) FROM es.events e WHERE e.global_position <= $proj
			                AND NOT EXISTS (SELECT 1 FROM public.rm r WHERE r.global_position = e.global_position))
			    || ' ' || (SELECT count(*) FROM public.rm r WHERE NOT EXISTS
			                (SELECT 1 FROM es.events e WHERE e.global_position = r.global_position
			                    AND e.event_id = r.event_id))
			    || ' ' || (SELECT coalesce(last_error, '-') FROM es._projections WHERE name = 'rm')}),
		'0 0 0 0 -',
		"$label: projection applied every event up to $proj exactly once, nothing beyond (dup beyond missing stray error)");
	$prev_proj = $proj;

	is(join("\n", @unexpected), '', "$label: the clients met no unexpected error");
	return ($sub, $proj);
}

# ---- rounds of load and crashes -------------------------------------------------------------

my $t0 = time();
for my $round (1 .. $rounds)
{
	my $how = $round % 2 ? 'kill9' : 'immediate';
	my $log = "$work/round$round.log";
	my $h = IPC::Run::start([ $client, 'load', $connstr, $log, 60 ],
		'>', "$work/client.out", '2>', "$work/client.err", IPC::Run::timeout(90));
	usleep(int((2 + rand(2.5)) * 1_000_000));
	crash($how);
	eval { $h->finish; };
	ok(!$@, "round $round: the client stopped at the crash") or $h->kill_kill;
	$node->start;
	my %n = read_log($log);
	# The load ran: after the previous restart the consumers claimed and acked, the
	# subscription and the projection moved.
	cmp_ok(($n{'ack g1'} // 0) * ($n{'ack g2'} // 0) * ($n{suback} // 0) * ($n{proj} // 0) * ($n{pub} // 0),
		'>', 0, "round $round: publishes, acks of both groups, subscription acks and refreshes went through");
	reconcile("round $round ($how)", 0);
}

# ---- a crash in the middle of one long refresh ------------------------------------------------

$node->safe_psql('postgres', q{
	SELECT es.append('bulk-' || s, NULL,
	                 (SELECT jsonb_agg(jsonb_build_object('type', 'Bulk', 'data', jsonb_build_object('i', i)))
	                    FROM generate_series(1, 100) i))
	  FROM generate_series(1, 500) s});
my ($before, $head) = split /\|/, $node->safe_psql('postgres',
	q{SELECT position, es.head_position() FROM es._projections WHERE name = 'rm'});
my $pending = $node->safe_psql('postgres', "SELECT count(*) FROM es.events WHERE global_position > $before");
cmp_ok($pending, '>=', 50000, "$pending events pending for the projection");
my $size0 = $node->safe_psql('postgres', q{SELECT pg_relation_size('public.rm')});
my ($refresh_out, $refresh_err) = ('', '');
my $refresh = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $connstr, '-c', q{SELECT es.projection_refresh('rm')} ],
	'>', \$refresh_out, '2>', \$refresh_err, IPC::Run::timeout(120));
# Crash once the refresh has written at least 5,000 read-model rows (uncommitted, visible in
# the relation size) — or has been running for 300 ms, since rows can also go into space that
# vacuum freed in the read model without growing it — and is still running.
my ($mid, $started) = (0, 0);
for (1 .. 3000)
{
	my ($size, $active) = split /\|/, $node->safe_psql('postgres', q{
		SELECT pg_relation_size('public.rm'),
		       (SELECT count(*) FROM pg_stat_activity
		         WHERE state = 'active' AND query LIKE 'SELECT es.projection_refresh(%')});
	if ($size - $size0 > 5000 * 56 || ($started && $active && time() - $started >= 0.3))
	{
		$mid = $active == 1;
		last;
	}
	last if $started && !$active;    # finished before it got far enough
	$started ||= $active ? time() : 0;
	usleep(10_000);
}
ok($mid, 'the long refresh was running, halfway through, when the server was killed');
crash('kill9');
eval { $refresh->finish; };
unlike($refresh_out, qr/^\d+$/m, 'the killed refresh never returned');
$node->start;
my ($after_crash) = reconcile('after the crash in a long refresh', 0);
my $cp = $node->safe_psql('postgres', q{SELECT position FROM es._projections WHERE name = 'rm'});
is($cp, $before, 'the killed refresh left the checkpoint where it was');
my $applied = $node->safe_psql('postgres', q{SELECT es.projection_refresh('rm')});
cmp_ok($applied, '>=', $pending, "the refresh after the restart applied the $applied pending events");
is( $node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FROM public.rm) = (SELECT count(*) FROM es.events)
		   AND (SELECT count(DISTINCT global_position) FROM public.rm) = (SELECT count(*) FROM es.events)}),
	't', 'after it, every event is in the read model exactly once');

# ---- drain: leases run out, messages come back, everything settles --------------------------

my $drain_log = "$work/drain.log";
my $rc = system($client, 'drain', $connstr, $drain_log, 90) >> 8;
is($rc, 0, 'the drain settled: every message acked or dead, subscription and projection at the last event');
read_log($drain_log);
reconcile('final', 1);
is( $node->safe_psql('postgres', q{
		SELECT count(*) = (SELECT count(*) FROM es.events) FROM public.rm}),
	't', 'final: the read model has one row per event');

# ---- a reported head stays a head across a crash ----------------------------------------------
# A transaction that allocates positions (past the sequence's 32-value WAL read-ahead) and rolls
# back flushes nothing; es.head_position() then reports a head whose sequence record is not yet
# durable. A crash right after must not let a later commit land at or below that head, or a
# consumer that kept the head would skip the event.
for my $how ('kill9', 'immediate', 'kill9')
{
	my $reported = $node->safe_psql('postgres', q{
		BEGIN;
		SELECT count(*) FROM es.append('head-rollback', NULL,
		    (SELECT jsonb_agg(jsonb_build_object('type', 'Gone')) FROM generate_series(1, 40))) \g /dev/null
		ROLLBACK;
		SELECT es.head_position();});
	crash($how);
	$node->start;
	my $next = $node->safe_psql('postgres',
		q{SELECT first_position FROM es.append_event('head-after', NULL, 'After', '{}')});
	cmp_ok($next, '>', $reported, "$how: the first commit after the crash ($next) lands above the head reported before it ($reported)");
}

my $elapsed = time() - $t0;
my $acked_commits = 0;
$acked_commits += $confirmed{$_} for qw(publish append rollback ack nack claim suback refresh);
diag(sprintf('%d crashes injected (%d kill -9, %d immediate stop); %d acknowledged commits reconciled'
		  . ' (%s); errors met: %s; %.0f s',
		$crashes, int(($rounds + 1) / 2) + 3, int($rounds / 2) + 1, $acked_commits,
		join(', ', map { "$_ $confirmed{$_}" } sort keys %confirmed),
		join(', ', map { "$_ x$errors{$_}" } sort keys %errors) || 'none', $elapsed));

$node->stop;
done_testing();
