-- pg_eventstore 0.2.0 -> 0.3.0.
--
-- Built by the Makefile until 0.3.0 is released (then frozen): this head — drops and ALTERs
-- that re-running an area file cannot express — followed by the area files UPGRADE_AREAS in the
-- Makefile lists (CREATE OR REPLACE only), in install order. The 0.3.0 library still exports
-- every C function 0.1.0 and 0.2.0 name. test/t/040_upgrade.pl compares a database updated from
-- 0.1.0 through 0.2.0 with a fresh 0.3.0 install and prints every difference.
\echo Use "ALTER EXTENSION pg_eventstore UPDATE" to load this file. \quit
