# Crash safety of es.append / es.append_event (API.md §1-§2): clients append single events and
# batches with idempotency keys and record every acknowledged COMMIT; the server is crashed at
# random moments, alternately by kill -9 of the postmaster and all its children and by
# `pg_ctl stop -m immediate`. After each restart: every acknowledged append is there whole at
# the versions and positions it was acknowledged with, no batch is partial, stream versions are
# gapless, and retrying any key (acknowledged or not) returns the original result or appends
# the batch exactly once.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);

my $rounds  = $ENV{ES_CRASH_ROUNDS}  // 6;
my $clients = $ENV{ES_CRASH_CLIENTS} // 4;
my $per_client = 4000;    # transactions scripted per client and round (more than it can reach)
my $streams = 12;
srand($ENV{ES_CRASH_SEED} // 20240607);


my $node = PostgreSQL::Test::Cluster->new('crash');
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
$node->safe_psql('postgres', 'CREATE EXTENSION pg_eventstore');

my %call;         # key => { stream, n, sql }: every append ever scripted
my %acked;        # key => "fv lv fp lp" as acknowledged after COMMIT
my ($crashes, $acked_commits) = (0, 0);

sub sql_literal { my ($s) = @_; $s =~ s/'/''/g; return "'$s'"; }

# One append call: a single event (es.append_event) or a batch (es.append), keyed.
sub append_sql {
	my ($key, $stream, $n) = @_;
	if ($n == 1 && rand() < 0.5) {
		return sprintf("es.append_event(%s, NULL, 'Single', %s, NULL, %s)",
			sql_literal($stream), sql_literal(qq({"key": "$key", "n": 1, "i": 1})),
			sql_literal($key));
	}
	my $events = join(', ',
		map { qq({"type": "Batch", "data": {"key": "$key", "n": $n, "i": $_}}) } 1 .. $n);
	return sprintf("es.append(%s, NULL, %s, %s)",
		sql_literal($stream), sql_literal("[$events]"), sql_literal($key));
}

# A psql script of transactions with one or two appends each; after COMMIT returns, it
# prints one ACK line per append with the result the server gave.
sub client_script {
	my ($round, $client) = @_;
	my $script = "\\set ON_ERROR_STOP 1\n";
	for my $t (1 .. $per_client) {
		my @keys;
		my $appends = rand() < 0.2 ? 2 : 1;
		# Two appends in one transaction take their streams in a fixed order, as an
		# application must to stay clear of deadlocks between them.
		my @streams = sort { $a <=> $b } map { int(rand($streams)) } 1 .. $appends;
		$script .= "BEGIN;\n";
		for my $a (1 .. $appends) {
			my $key    = "r$round-c$client-t$t-a$a";
			my $stream = 'crash-' . sprintf('%02d', $streams[$a - 1]);
			my $n      = rand() < 0.4 ? 1 : 2 + int(rand(5));
			my $sql    = append_sql($key, $stream, $n);
			$call{$key} = { stream => $stream, n => $n, sql => $sql };
			push @keys, $key;
			$script .= "SELECT first_version, last_version, first_position, last_position"
			  . " FROM $sql \\gset a${a}_\n";
		}
		$script .= "COMMIT;\n";
		for my $a (1 .. $appends) {
			$script .= "\\echo ACK $keys[$a - 1] :a${a}_first_version :a${a}_last_version"
			  . " :a${a}_first_position :a${a}_last_position\n";
		}
	}
	return $script;
}

# Every process whose parent is the postmaster.
sub children_of {
	my ($pid) = @_;
	my @kids;
	opendir(my $dh, '/proc') or die "cannot read /proc: $!";
	for my $p (grep { /^\d+$/ } readdir($dh)) {
		open(my $fh, '<', "/proc/$p/stat") or next;
		my $stat = <$fh>;
		close($fh);
		push @kids, $p if defined $stat && $stat =~ /\)\s+\S+\s+(\d+)/ && $1 == $pid;
	}
	closedir($dh);
	return @kids;
}

sub crash {
	my ($how) = @_;
	if ($how eq 'kill9') {
		my $pm = $node->{_pid};
		my @kids = children_of($pm);
		$node->kill9;
		kill('KILL', @kids) if @kids;
		# The new postmaster refuses to start while an old backend is still attached.
		for (1 .. 100) { last unless grep { kill(0, $_) } @kids; usleep(50_000); }
	}
	else {
		$node->stop('immediate');
	}
	$crashes++;
}

# Replays calls and returns key => "fv lv fp lp duplicate".
sub replay {
	my @keys = @_;
	my %result;
	while (my @chunk = splice(@keys, 0, 500)) {
		my $sql = join('', map {
			"SELECT " . sql_literal($_) . ", first_version, last_version, first_position,"
			  . " last_position, duplicate FROM $call{$_}{sql};\n"
		} @chunk);
		my $out = $node->safe_psql('postgres', $sql);
		for my $line (split /\n/, $out) {
			my ($key, @r) = split /\|/, $line;
			$result{$key} = "@r";
		}
	}
	return %result;
}

# Everything the store must satisfy after a restart.
sub reconcile {
	my ($round) = @_;
	my $partial = $node->safe_psql('postgres', q{
		SELECT count(*) FROM (
		  SELECT data->>'key' FROM es.events
		   GROUP BY data->>'key', stream_id
		  HAVING count(*) <> max((data->>'n')::int)
		      OR max(stream_version) - min(stream_version) + 1 <> count(*)
		      OR count(DISTINCT (data->>'i')) <> count(*)) b});
	is($partial, '0', "round $round: no partial batch");
	my $gaps = $node->safe_psql('postgres', q{
		SELECT count(*) FROM (
		  SELECT stream_id FROM es.events GROUP BY stream_id
		  HAVING min(stream_version) <> 1 OR max(stream_version) <> count(*)) s});
	is($gaps, '0', "round $round: stream versions gapless");
	my $split = $node->safe_psql('postgres', q{
		SELECT count(*) FROM (SELECT data->>'key' FROM es.events
		  GROUP BY 1 HAVING count(DISTINCT stream_id) > 1) k});
	is($split, '0', "round $round: every key in one stream");

	# Every acknowledged append, whole, where it was acknowledged.
	my $stored = $node->safe_psql('postgres', q{
		SELECT data->>'key', min(stream_version), max(stream_version), min(global_position),
		       max(global_position), count(*), min(stream_id)
		  FROM es.events GROUP BY 1});
	my %stored;
	for my $line (split /\n/, $stored) {
		my ($key, $fv, $lv, $fp, $lp, $count, $stream) = split /\|/, $line;
		$stored{$key} = { at => "$fv $lv $fp $lp", count => $count, stream => $stream };
	}
	my $missing = 0;
	for my $key (keys %acked) {
		my $s = $stored{$key};
		if (!$s || $s->{at} ne $acked{$key} || $s->{count} != $call{$key}{n}
			|| $s->{stream} ne $call{$key}{stream}) {
			$missing++;
			diag("acknowledged $key ($acked{$key}) stored as "
				  . ($s ? "$s->{at} x$s->{count} in $s->{stream}" : 'nothing'));
		}
	}
	is($missing, 0, "round $round: every acknowledged append is stored whole ("
		  . scalar(keys %acked) . " so far)");
	return %stored;
}

for my $round (1 .. $rounds) {
	my $how = $round % 2 ? 'kill9' : 'immediate';
	my @handles;
	for my $c (1 .. $clients) {
		my $script = client_script($round, $c);
		my $file = "${PostgreSQL::Test::Utils::tmp_check}/client_r${round}_c$c.sql";
		open(my $fh, '>', $file) or die "cannot write $file: $!";
		print $fh $script;
		close($fh);
		my ($out, $err) = ('', '');
		my $h = IPC::Run::start(
			[ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-f', $file ],
			'>', \$out, '2>', \$err);
		push @handles, { h => $h, out => \$out, err => \$err };
	}
	usleep(int(400_000 + rand(1_600_000)));
	crash($how);
	my ($round_acks, $client_errors) = (0, 0);
	for my $c (@handles) {
		eval { $c->{h}->finish; };
		for my $line (split /\n/, ${ $c->{out} }) {
			next unless $line =~ /^ACK (\S+) (\d+) (\d+) (\d+) (\d+)$/;
			$acked{$1} = "$2 $3 $4 $5";
			$round_acks++;
		}
		# A client stops at its first error; the only one expected is losing the server.
		my @errors = grep { /ERROR/ } split /\n/, ${ $c->{err} };
		$client_errors += @errors;
		diag("client: $_") for @errors;
	}
	is($client_errors, 0, "round $round: clients saw no error but the crash");
	$acked_commits += $round_acks;
	note("round $round ($how): $round_acks appends acknowledged");
	$node->start;
	reconcile($round);
}

# Retries: every acknowledged key returns its original result as a duplicate; every scripted
# key that was sent but not acknowledged either was committed (duplicate, same place) or is
# appended now, exactly once.
my %before = reconcile('final');
my %sent = map { $_ => 1 } grep { /^r(\d+)-c(\d+)-t(\d+)/ } keys %call;
my @unacked_sent = grep { !exists $acked{$_} && exists $before{$_} } keys %sent;
my %ack_retry = replay(keys %acked);
my $bad_acked = grep { $ack_retry{$_} ne "$acked{$_} t" } keys %acked;
is($bad_acked, 0, 'every acknowledged key, retried, returns its original result');
my %lost_ack_retry = replay(@unacked_sent);
my $bad_lost = grep { $lost_ack_retry{$_} ne "$before{$_}{at} t" } @unacked_sent;
is($bad_lost, 0, 'committed but unacknowledged keys, retried, return the stored result');
my @never = grep { !exists $acked{$_} && !exists $before{$_} } keys %call;
my @sample = (sort @never)[0 .. ($#never < 199 ? $#never : 199)];
my %fresh = replay(@sample);
my $bad_fresh = grep { $fresh{$_} !~ / f$/ } @sample;
is($bad_fresh, 0, 'keys that never committed append once on retry');
my %again = replay(@sample);
my $bad_again = grep { $again{$_} ne ($fresh{$_} =~ s/ f$/ t/r) } @sample;
is($bad_again, 0, '...and are duplicates on the next retry');
reconcile('after retries');

diag("crashes injected: $crashes; acknowledged appends reconciled: "
	  . scalar(keys %acked) . " (acks received: $acked_commits); committed without ack: "
	  . scalar(@unacked_sent) . "; never committed, retried: " . scalar(@sample));
cmp_ok($crashes, '==', $rounds, 'a crash in every round');
cmp_ok(scalar(keys %acked), '>', 0, 'appends were acknowledged');

$node->stop;
done_testing();
