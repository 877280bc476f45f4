# pg_eventstore — PGXS build. `make`, `make install`, `make installcheck` work against any
# PostgreSQL 15+ whose pg_config is on PATH (or PG_CONFIG=...). `make test` and `make demo`
# run the whole thing on a throwaway cluster (see README.md).

EXTENSION   = pg_eventstore
EXTVERSION  = 0.3.0
MODULE_big  = pg_eventstore

CORE_SRCS   = $(wildcard src/core/*.cpp)
PG_SRCS     = $(wildcard src/pg/*.cpp)
OBJS        = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

# The install script of EXTVERSION is assembled from one file per API area. Released install
# scripts (pg_eventstore--0.1.0.sql, --0.2.0.sql) and released upgrade scripts
# (pg_eventstore--A--B.sql) are committed at the top level, frozen, and installed as they are.
# The upgrade script into the unreleased EXTVERSION is built from src/upgrade/<from>--<to>.head.sql
# (what the area files cannot express: drops, ALTER TABLE), the area files listed in
# UPGRADE_AREAS (each of them re-runnable: CREATE OR REPLACE only), so it cannot drift from
# them, and the .tail.sql (privileges of new functions); it is committed frozen when EXTVERSION
# is released.
SQL_SOURCES = $(sort $(wildcard src/sql/*.sql))
UPGRADE_FROM = 0.2.0
UPGRADE_TO_CURRENT = $(EXTENSION)--$(UPGRADE_FROM)--$(EXTVERSION).sql
UPGRADE_AREAS = 20_append.sql 30_read.sql 41_outbox_flow.sql 51_subscription_ack.sql 85_stats.sql \
                91_grants.sql
UPGRADE_SOURCES = src/upgrade/$(UPGRADE_FROM)--$(EXTVERSION).head.sql \
                  $(addprefix src/sql/,$(UPGRADE_AREAS)) \
                  src/upgrade/$(UPGRADE_FROM)--$(EXTVERSION).tail.sql
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql $(UPGRADE_TO_CURRENT)
DATA        = $(filter-out $(DATA_built),$(wildcard $(EXTENSION)--*.sql))

REGRESS      = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)
ISOLATION      = $(sort $(basename $(notdir $(wildcard test/isolation/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=test/isolation/results \
                 --load-extension=$(EXTENSION)

SHLIB_LINK  = -lstdc++
EXTRA_CLEAN = test/isolation/results test/isolation/output_iso

# No JIT bitcode for our C++: it needs a matching clang and buys nothing here.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

PG_CPPFLAGS = -isystem $(includedir_server) -isystem $(includedir_internal)
override CXXFLAGS += -std=c++17 -Wall -Wextra -Wno-register -Wno-missing-field-initializers \
                     -Wno-unused-parameter -fno-omit-frame-pointer $(ES_CXXFLAGS)
override CPPFLAGS := $(PG_CPPFLAGS) $(CPPFLAGS)

# Every object depends on every header: the tree is small, stale objects are not.
$(OBJS): $(wildcard src/core/*.hpp src/pg/*.hpp)

# `make SANITIZE=1`: AddressSanitizer + UBSan build. Only for test/sanitize.sh, which builds it
# in a copy of the tree and runs the server with the ASan runtime preloaded.
ifeq ($(SANITIZE),1)
override CXXFLAGS += -fsanitize=address,undefined
SHLIB_LINK += -fsanitize=address,undefined
endif

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_SOURCES)
	cat $^ > $@

$(UPGRADE_TO_CURRENT): $(UPGRADE_SOURCES)
	cat $^ > $@

# isolation specs through pg_isolation_regress (PGXS's `installcheck` runs these too when
# ISOLATION is set).
.PHONY: test demo bench unit
test:
	test/run
demo:
	test/demo
bench:
	bench/run
unit:
	cmake -S . -B build/unit -DCMAKE_BUILD_TYPE=Debug >/dev/null && \
	cmake --build build/unit -j2 && ctest --test-dir build/unit --output-on-failure
