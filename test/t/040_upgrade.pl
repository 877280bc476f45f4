# Upgrades (STYLE.md §5, API.md §8): install the frozen 0.1.0 script, write data,
# ALTER EXTENSION pg_eventstore UPDATE (through every released version to the current one), then
#   (a) the catalog of the updated database equals a fresh install of the current version: functions (arguments,
#       result, volatility, SECURITY DEFINER, SET options, ACL, definition), relations, columns,
#       indexes, constraints, triggers (with tgenabled), policies, sequences, types in schema es
#       and on the event tables, extension members, config-dump registrations and pg_init_privs;
#       every difference is printed;
#   (b) the data survives, and appends, idempotent replays, read_all, the outbox, subscriptions,
#       projections and state work on the updated database;
#   (c) the regression suites and isolation specs pass against a database updated from 0.1.0.
#   (d) a database installed at 0.2.0 and updated equals a fresh install too.
# A failure here usually means a src/sql change that the upgrade script into the current
# version (src/upgrade/*.head.sql + UPGRADE_AREAS in the Makefile) does not express.
use strict;
use warnings;
use File::Basename qw(dirname basename);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Cluster->init runs "$PG_REGRESS --config-auth"; default it to the pg_regress of the
# PostgreSQL whose pg_config is first on PATH.
my $pgxs = `pg_config --pgxs`;
chomp $pgxs;
my $pgxs_dir = dirname(dirname($pgxs));
$ENV{PG_REGRESS} ||= "$pgxs_dir/test/regress/pg_regress";
my $root = $ENV{ES_ROOT} or BAIL_OUT('ES_ROOT (the repository root) is not set');
my ($current) = slurp_file("$root/pg_eventstore.control") =~ /default_version\s*=\s*'([^']+)'/
  or BAIL_OUT('no default_version in pg_eventstore.control');

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', "max_prepared_transactions = 20\nmax_connections = 60\n");
$node->start;

# ---------------------------------------------------------------------------------------------
# The catalog description: one "key<TAB>value" line per property of every object the extension
# owns or manages. Keys name the object and the property, so a difference reads by itself.
my $describe_sql = <<'SQL';
WITH ext AS (SELECT e.* FROM pg_extension e WHERE e.extname = 'pg_eventstore'),
rels AS (
    SELECT c.oid, c.relkind FROM pg_class c
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'c', 'S', 'f')
       AND (c.relnamespace = 'es'::regnamespace
            OR c.oid IN (SELECT s.store FROM es._stores s)
            OR c.oid IN (SELECT s.position_seq FROM es._stores s))),
lines(key, value) AS (
    SELECT 'extension version', e.extversion FROM ext e
    UNION ALL
    SELECT 'extension schema and relocatable', format('%s %s', e.extnamespace::regnamespace, e.extrelocatable) FROM ext e
    UNION ALL
    SELECT 'config_dump ' || c.cfg::regclass::text, format('condition=%L', c.cond)
      FROM ext e, unnest(e.extconfig, e.extcondition) AS c(cfg, cond)
    UNION ALL
    SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid), 'member of the extension'
      FROM pg_depend d, ext e
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid AND d.deptype = 'e'
    UNION ALL
    SELECT 'init_privs ' || pg_describe_object(i.classoid, i.objoid, i.objsubid), i.initprivs::text
      FROM pg_init_privs i WHERE i.privtype = 'e'
    UNION ALL
    SELECT 'schema ' || n.nspname, format('owner=%s acl=%s comment=%L', n.nspowner::regrole, n.nspacl,
                                          obj_description(n.oid, 'pg_namespace'))
      FROM pg_namespace n WHERE n.nspname = 'es'
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure || ' ' || a.attr, a.value
      FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
     CROSS JOIN LATERAL (VALUES
        ('arguments', pg_get_function_arguments(p.oid)),
        ('result', pg_get_function_result(p.oid)),
        ('attributes', format('kind=%s language=%s volatility=%s strict=%s security_definer=%s leakproof=%s parallel=%s cost=%s rows=%s',
                              p.prokind, l.lanname, p.provolatile, p.proisstrict, p.prosecdef,
                              p.proleakproof, p.proparallel, p.procost, p.prorows)),
        ('config', coalesce(p.proconfig::text, '(none)')),
        ('acl', coalesce(p.proacl::text, '(default: PUBLIC may execute)')),
        ('owner', p.proowner::regrole::text),
        ('definition', 'md5 ' || md5(CASE WHEN p.prokind = 'a' THEN p.prosrc ELSE pg_get_functiondef(p.oid) END)),
        ('comment', coalesce(obj_description(p.oid, 'pg_proc'), '(none)'))) AS a(attr, value)
     WHERE p.pronamespace = 'es'::regnamespace
    UNION ALL
    SELECT 'relation ' || r.oid::regclass || ' ' || a.attr, a.value
      FROM rels r JOIN pg_class c ON c.oid = r.oid
     CROSS JOIN LATERAL (VALUES
        ('attributes', format('kind=%s persistence=%s rls=%s force_rls=%s replica_identity=%s options=%s',
                              c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
                              c.relreplident, c.reloptions)),
        ('owner', c.relowner::regrole::text),
        ('acl', coalesce(c.relacl::text, '(default)')),
        ('comment', coalesce(obj_description(c.oid, 'pg_class'), '(none)')),
        ('view definition', CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END)) AS a(attr, value)
     WHERE a.value IS NOT NULL
    UNION ALL
    SELECT format('column %s.%s', r.oid::regclass, quote_ident(att.attname)),
           format('#%s %s not_null=%s default=%s identity=%s generated=%s collation=%s acl=%s comment=%L',
                  row_number() OVER (PARTITION BY r.oid ORDER BY att.attnum),
                  format_type(att.atttypid, att.atttypmod), att.attnotnull,
                  pg_get_expr(ad.adbin, ad.adrelid), att.attidentity, att.attgenerated,
                  NULLIF(att.attcollation, 0)::regcollation, att.attacl,
                  col_description(r.oid, att.attnum))
      FROM rels r
      JOIN pg_attribute att ON att.attrelid = r.oid AND att.attnum > 0 AND NOT att.attisdropped
      LEFT JOIN pg_attrdef ad ON ad.adrelid = att.attrelid AND ad.adnum = att.attnum
     WHERE r.relkind <> 'S'
    UNION ALL
    SELECT 'index ' || i.indexrelid::regclass,
           format('%s primary=%s valid=%s', pg_get_indexdef(i.indexrelid), i.indisprimary, i.indisvalid)
      FROM pg_index i JOIN rels r ON r.oid = i.indrelid
    UNION ALL
    SELECT format('constraint %s.%s', co.conrelid::regclass, quote_ident(co.conname)),
           format('%s deferrable=%s deferred=%s validated=%s', pg_get_constraintdef(co.oid),
                  co.condeferrable, co.condeferred, co.convalidated)
      FROM pg_constraint co JOIN rels r ON r.oid = co.conrelid
    UNION ALL
    SELECT format('trigger %s.%s', t.tgrelid::regclass, quote_ident(t.tgname)),
           format('%s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
      FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid
     WHERE NOT t.tgisinternal
    UNION ALL
    SELECT format('policy %s.%s', po.polrelid::regclass, quote_ident(po.polname)),
           format('cmd=%s permissive=%s roles=%s using=%s check=%s', po.polcmd, po.polpermissive,
                  (SELECT array_agg(CASE WHEN x = 0 THEN 'public' ELSE x::regrole::text END ORDER BY 1)
                     FROM unnest(po.polroles) x),
                  pg_get_expr(po.polqual, po.polrelid), pg_get_expr(po.polwithcheck, po.polrelid))
      FROM pg_policy po JOIN rels r ON r.oid = po.polrelid
    UNION ALL
    SELECT 'sequence ' || s.seqrelid::regclass,
           format('type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owned_by=%s',
                  s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,
                  s.seqcycle,
                  (SELECT string_agg(pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), ', ')
                     FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                      AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0))
      FROM pg_sequence s JOIN rels r ON r.oid = s.seqrelid
    UNION ALL
    SELECT 'type ' || t.oid::regtype,
           format('typtype=%s owner=%s acl=%s comment=%L', t.typtype, t.typowner::regrole, t.typacl,
                  obj_description(t.oid, 'pg_type'))
      FROM pg_type t
     WHERE t.typnamespace = 'es'::regnamespace AND t.typcategory <> 'A'
    UNION ALL
    SELECT 'store ' || s.store::text, format('position_seq=%s builtin=%s', s.position_seq, s.builtin)
      FROM es._stores s)
SELECT key || E'\t' || regexp_replace(coalesce(value, '(null)'), '\s+', ' ', 'g')
  FROM lines ORDER BY key
SQL

# Returns { key => value } for a database.
sub describe
{
	my ($db) = @_;
	my %desc;
	for my $line (split /\n/, $node->safe_psql($db, $describe_sql))
	{
		my ($key, $value) = split /\t/, $line, 2;
		die "duplicate key in the catalog description: $key" if exists $desc{$key};
		$desc{$key} = $value;
	}
	return \%desc;
}

# Differences between two descriptions, grouped by object kind (the key's first word):
# { kind => [ "text", ... ] }.
sub compare_descriptions
{
	my ($got, $want, $got_name, $want_name) = @_;
	my %diff;
	my %keys = map { $_ => 1 } (keys %$got, keys %$want);
	for my $key (sort keys %keys)
	{
		my ($kind) = split / /, $key;
		if (!exists $want->{$key})
		{
			push @{ $diff{$kind} }, "only in $got_name: $key = $got->{$key}";
		}
		elsif (!exists $got->{$key})
		{
			push @{ $diff{$kind} }, "only in $want_name: $key = $want->{$key}";
		}
		elsif ($got->{$key} ne $want->{$key})
		{
			push @{ $diff{$kind} },
			  "differs: $key\n    $got_name: $got->{$key}\n    $want_name: $want->{$key}";
		}
	}
	return \%diff;
}

# The full definitions of a function in both databases, as a unified diff.
sub function_diff
{
	my ($signature, $db_a, $db_b) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir();
	for my $db ($db_a, $db_b)
	{
		my $def = $node->safe_psql($db,
			"SELECT pg_get_functiondef('$signature'::regprocedure)");
		open my $fh, '>', "$dir/$db.sql" or die $!;
		print $fh "$def\n";
		close $fh;
	}
	return `cd '$dir' && diff -u '$db_a.sql' '$db_b.sql'`;
}

# ---------------------------------------------------------------------------------------------
# The installed library still exports every C function the frozen scripts name (a database not
# yet updated calls them; a missing one fails CREATE EXTENSION ... VERSION '0.1.0' and every
# call of it).
for my $script (sort glob("$root/pg_eventstore--*.sql"))
{
	my $text = slurp_file($script);
	my %symbols = map { $_ => 1 } ($text =~ /'MODULE_PATHNAME',\s*'(\w+)'/g);
	my @missing;
	for my $symbol (sort keys %symbols)
	{
		my ($rc, $o, $e) = $node->psql('postgres',
			"CREATE FUNCTION pg_temp.probe() RETURNS void LANGUAGE c AS '\$libdir/pg_eventstore', '$symbol'");
		push @missing, "$symbol: $e" if $rc != 0;
	}
	is(scalar(@missing), 0, basename($script) . ': the library exports its ' . scalar(keys %symbols)
		  . ' C functions')
	  or diag(join("\n", @missing));
}

# ---------------------------------------------------------------------------------------------
# 0.1.0: install, write data.
$node->safe_psql('postgres', 'CREATE DATABASE updated');
$node->safe_psql('updated', q{
	CREATE EXTENSION pg_eventstore VERSION '0.1.0';
	CREATE SCHEMA app;
	SELECT es.create_event_table('app.orders');
	SELECT es.create_event_table('app."Audit Log"');
});
is($node->safe_psql('updated', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_eventstore'}),
	'0.1.0', 'installed version 0.1.0');

$node->safe_psql('updated', q{
	SELECT es.append('acc-1', 0, '[{"type":"Opened","data":{"owner":"ann"},"metadata":{"ip":"10.0.0.1"}}]', 'acc-1/open');
	SELECT es.append('acc-1', 1, '[{"type":"Deposited","data":{"eur":10}},{"type":"Deposited","data":{"eur":5}}]', 'acc-1/dep');
	SELECT es.append('acc-2', 0, '[{"type":"Opened","id":"0190a6c2-4f5e-7abc-8def-0123456789ab"}]');
	SELECT es.append_event('acc-2', 1, 'Deposited', '{"eur":7}', '{"by":"teller"}', 'acc-2/dep');
	SELECT es.append('order-1', 0, '[{"type":"Placed","data":{"total":30}}]', 'order-1/place', 'app.orders');
	SELECT es.append('order-1', 1, '[{"type":"Paid"}]', NULL, 'app.orders');
	INSERT INTO app.orders (stream_id, stream_version, event_type, data) VALUES ('order-1', 3, 'Shipped', '{"by":"plain insert"}');
	SELECT es.append('order-2', 0, '[{"type":"Placed","data":{"total":12}}]', 'order-2/place', 'app.orders');
	SELECT es.append('audit', 0, '[{"type":"Login"},{"type":"Logout"}]', 'audit/1', 'app."Audit Log"');
	BEGIN;
	SELECT es.append('acc-3', 0, '[{"type":"Opened"}]');
	ROLLBACK;
});

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
	stores => q{SELECT store, position_seq, builtin, created_at FROM es._stores ORDER BY store::text},
	versions => q{SELECT es.stream_version('acc-1'), es.stream_version('acc-2'),
	                     es.stream_version('order-1', 'app.orders'),
	                     es.stream_version('audit', 'app."Audit Log"')},
	read_all => q{SELECT string_agg(global_position::text, ',') FROM es.read_all(0, 1000)},
);
my %before = map { $_ => $node->safe_psql('updated', $query{$_}) } keys %query;
is($before{versions}, '3|2|3|2', '0.1.0: stream versions');
is(scalar(split /\n/, $before{keys}), 6, '0.1.0: six idempotency keys');

# The instrument sees the difference between 0.1.0 and the current version (else (a) below
# proves nothing).
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', q{
	CREATE EXTENSION pg_eventstore;
	CREATE SCHEMA app;
	SELECT es.create_event_table('app.orders');
	SELECT es.create_event_table('app."Audit Log"');
});
my $fresh = describe('fresh');
my $old_diff = compare_descriptions(describe('updated'), $fresh, '0.1.0', "fresh $current");
cmp_ok(scalar(map { @$_ } values %$old_diff), '>', 100,
	"the catalog description tells 0.1.0 from $current");

# ---------------------------------------------------------------------------------------------
# The update.
$node->safe_psql('updated', 'ALTER EXTENSION pg_eventstore UPDATE');
is($node->safe_psql('updated', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_eventstore'}),
	$current, "updated to $current");

# (a) The catalog equals a fresh install's.
my $updated = describe('updated');
cmp_ok(scalar(grep { /^function / } keys %$fresh), '>', 400, 'the description covers the functions');
ok(exists $fresh->{'trigger app.orders.es_guard_modify'}, 'the description covers event-table triggers');
ok(exists $fresh->{'config_dump es._outbox_messages'}, 'the description covers config-dump registrations');
my $diff = compare_descriptions($updated, $fresh, 'updated', 'fresh');
for my $kind (qw(extension config_dump member init_privs schema function relation column index
	constraint trigger policy sequence type store))
{
	my $lines = delete $diff->{$kind} || [];
	my $ok = is(scalar(@$lines), 0, "(a) $kind: updated database equals a fresh $current install");
	next if $ok;
	diag("the upgrade scripts from 0.1.0 do not produce what src/sql installs ($kind):");
	diag("  $_") for @$lines;
	if ($kind eq 'function')
	{
		my %seen;
		for (@$lines)
		{
			next unless /^differs: function (\S+\)) definition/;
			next if $seen{$1}++;
			diag("  definition of $1 (- updated, + fresh):\n" . function_diff($1, 'updated', 'fresh'));
		}
	}
}
is_deeply([ sort keys %$diff ], [], '(a) no difference of any other kind')
  or diag(join("\n", map { @$_ } values %$diff));

# (d) From the previous release: installed at 0.2.0, updated, equal to a fresh install.
$node->safe_psql('postgres', 'CREATE DATABASE from_020');
$node->safe_psql('from_020', q{
	CREATE EXTENSION pg_eventstore VERSION '0.2.0';
	CREATE SCHEMA app;
	SELECT es.create_event_table('app.orders');
	SELECT es.create_event_table('app."Audit Log"');
	ALTER EXTENSION pg_eventstore UPDATE;
});
my $diff_020 = compare_descriptions(describe('from_020'), $fresh, 'from_020', 'fresh');
is_deeply([ map { @$_ } values %$diff_020 ], [], "(d) 0.2.0 updated to $current equals a fresh install")
  or diag(join("\n", map { @$_ } values %$diff_020));

# ---------------------------------------------------------------------------------------------
# (b) The data survived.
for my $what (sort keys %query)
{
	is($node->safe_psql('updated', $query{$what}), $before{$what}, "(b) $what unchanged by the update");
}

# Idempotent replays are duplicates with the original result; reusing a key is refused.
is( $node->safe_psql('updated',
		q{SELECT (r).* FROM (SELECT es.append('acc-1', 1, '[{"type":"Deposited","data":{"eur":10}},{"type":"Deposited","data":{"eur":5}}]', 'acc-1/dep') AS r) s}),
	'2|3|2|3|t', '(b) replay in es.events returns the original result, duplicate');
is( $node->safe_psql('updated',
		q{SELECT duplicate, first_position FROM es.append('order-1', 0, '[{"type":"Placed","data":{"total":30}}]', 'order-1/place', 'app.orders')}),
	't|1', '(b) replay in a user event table is a duplicate');
my ($ret, $out, $err) = $node->psql('updated',
	q{SELECT es.append('acc-1', NULL, '[{"type":"Other"}]', 'acc-1/open')});
like($err, qr/idempotency key "acc-1\/open" was already used/, '(b) a key of 0.1.0 refuses other events');
($ret, $out, $err) = $node->psql('updated',
	q{SELECT es.append('order-1', 2, '[{"type":"Stale"}]', NULL, 'app.orders')});
like($err, qr/expected 2, actual 3/, '(b) versions of 0.1.0 drive the expected-version check');
($ret, $out, $err) = $node->psql('updated', 'DELETE FROM app.orders');
like($err, qr/DELETE is not allowed on event table app\.orders/, '(b) an event table of 0.1.0 stays append-only');

# Outbox, subscriptions and projections on stores created under 0.1.0.
$node->safe_psql('updated', q{
	SELECT es.outbox_route('orders', 'app.orders');
	SELECT es.outbox_subscribe('billing', 'orders');
	SELECT es.subscription_create('all-orders', 'app.orders');
	CREATE TABLE app.order_totals (order_id text PRIMARY KEY, total numeric);
	CREATE FUNCTION app.order_totals_apply(e es.event) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
	    INSERT INTO app.order_totals VALUES (e.stream_id, coalesce((e.data->>'total')::numeric, 0))
	    ON CONFLICT (order_id) DO UPDATE SET total = app.order_totals.total + excluded.total;
	END $$;
	SELECT es.projection_create('order-totals', 'app.order_totals_apply(es.event)', 'app.orders');
	CREATE TABLE app.deposits (account text PRIMARY KEY, n int);
	CREATE FUNCTION app.deposits_apply(e es.event) RETURNS void LANGUAGE sql AS $$
	    INSERT INTO app.deposits VALUES (e.stream_id, 1)
	    ON CONFLICT (account) DO UPDATE SET n = app.deposits.n + 1 $$;
	SELECT es.projection_create('deposits', 'app.deposits_apply(es.event)', 'es.events',
	                            event_types => '{Deposited}', mode => 'inline');
	CREATE FUNCTION app.balance(state jsonb, e es.event) RETURNS jsonb LANGUAGE sql AS $$
	    SELECT jsonb_build_object('eur', coalesce((state->>'eur')::int, 0) + coalesce((e.data->>'eur')::int, 0)) $$;
});
my $max_orders = $node->safe_psql('updated', 'SELECT max(global_position) FROM app.orders');
my $new_pos = $node->safe_psql('updated',
	q{SELECT first_position FROM es.append('order-3', 0, '[{"type":"Placed","data":{"total":8}}]', 'order-3/place', 'app.orders')});
cmp_ok($new_pos, '>', $max_orders, '(b) a new append lands above every 0.1.0 position');
$node->safe_psql('updated', q{SELECT es.outbox_publish('orders', '{"hello":1}', 'k-1')});
my ($claimed, $ids) = split /\|/, $node->safe_psql('updated',
	q{SELECT string_agg(format('%s:%s', key, payload->>'event_type'), ' ' ORDER BY id), array_agg(id)
	    FROM es.outbox_claim('billing', 'orders', 10)});
is($claimed, 'order-3:Placed k-1:', '(b) outbox: a routed append and a published message are claimed');
$node->safe_psql('updated', "SELECT es.outbox_ack('billing', '$ids')");
is($node->safe_psql('updated', q{SELECT count(*) FROM es.outbox_claim('billing', 'orders', 10)}),
	'0', '(b) outbox: nothing left after the ack');
is( $node->safe_psql('updated',
		q{SELECT string_agg(format('%s/%s', stream_id, stream_version), ' ' ORDER BY global_position)
		    FROM es.read_all(0, 1000, store => 'app.orders')}),
	'order-1/1 order-1/2 order-1/3 order-2/1 order-3/1', '(b) read_all of a 0.1.0 store');
is( $node->safe_psql('updated',
		q{SELECT count(*), max(global_position) FROM es.subscription_next('all-orders', 100)}),
	"5|$new_pos", '(b) subscription: reads the events written before and after the update');
$node->safe_psql('updated', "SELECT es.subscription_ack('all-orders', $new_pos)");
is($node->safe_psql('updated', q{SELECT position, lag FROM es.subscriptions WHERE name = 'all-orders'}),
	"$new_pos|0", '(b) subscription: acked to the head');
is($node->safe_psql('updated', q{SELECT es.projection_refresh('order-totals')}), '5',
	'(b) projection refresh processes every event of the store');
is($node->safe_psql('updated', q{SELECT string_agg(order_id || '=' || total, ' ' ORDER BY order_id) FROM app.order_totals}),
	'order-1=30 order-2=12 order-3=8', '(b) projection read model');
$node->safe_psql('updated', q{SELECT es.append_event('acc-1', 3, 'Deposited', '{"eur":1}')});
is($node->safe_psql('updated', q{SELECT account || '=' || n FROM app.deposits}), 'acc-1=1',
	'(b) inline projection on es.events (created by 0.1.0)');
is($node->safe_psql('updated', q{SELECT es.aggregate_state('acc-1', 'app.balance(jsonb, es.event)')->>'eur'}),
	'16', '(b) aggregate_state folds events of 0.1.0 and after');
is( $node->safe_psql('updated',
		q{SELECT count(*) FROM es.read_all(0, 1000) r JOIN es.events e USING (global_position)}),
	$node->safe_psql('updated', 'SELECT count(*) FROM es.events'), '(b) read_all of es.events sees every event');
is($node->safe_psql('updated', q{SELECT string_agg(kind, ',' ORDER BY kind) FROM es.maintain()}),
	'idempotency_keys,outbox_messages', '(b) es.maintain');

# ---------------------------------------------------------------------------------------------
# (c) Every regression suite and isolation spec against databases updated from 0.1.0. They
# are empty when updated: the suites print positions and counts of an empty database, as
# `make installcheck` runs them in a new one. No suite is skipped.
my $bindir = `pg_config --bindir`;
chomp $bindir;
for my $suite (
	[ 'regress', "$pgxs_dir/test/regress/pg_regress", $root, "$root/sql", 'sql' ],
	[
		'isolation', "$pgxs_dir/test/isolation/pg_isolation_regress",
		"$root/test/isolation", "$root/test/isolation/specs", 'spec'
	])
{
	my ($name, $runner, $inputdir, $testdir, $ext) = @$suite;
	my $db = "${name}_updated";
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	# The settings pg_regress gives the databases it creates itself.
	$node->safe_psql('postgres', join(';',
		map { "ALTER DATABASE $db SET $_" } "lc_messages TO 'C'", "lc_monetary TO 'C'",
		"lc_numeric TO 'C'", "lc_time TO 'C'", "bytea_output TO 'hex'",
		"timezone_abbreviations TO 'Default'"));
	$node->safe_psql($db, q{
		CREATE EXTENSION pg_eventstore VERSION '0.1.0';
		ALTER EXTENSION pg_eventstore UPDATE;
	});
	my @tests = sort map { basename($_, ".$ext") } glob("$testdir/*.$ext");
	my $outdir = PostgreSQL::Test::Utils::tempdir();
	my ($stdout, $stderr);
	my $ok = IPC::Run::run(
		[
			$runner, '--use-existing', "--dbname=$db", "--inputdir=$inputdir",
			"--outputdir=$outdir", "--bindir=$bindir", '--host=' . $node->host,
			'--port=' . $node->port, @tests
		],
		'>', \$stdout, '2>', \$stderr);
	note($stdout);
	ok($ok, "(c) $name: " . scalar(@tests) . " suites pass on a database updated from 0.1.0")
	  or diag("$stdout$stderr"
		  . (-e "$outdir/regression.diffs" ? slurp_file("$outdir/regression.diffs") : ''));
}

$node->stop;
done_testing();
