// The notification relay (API.md §4, DESIGN-NOTES §2): one dynamic background worker per
// database that NOTIFYs on the writers' behalf after their commits, so no appending commit
// ever queues behind NOTIFY's cluster-wide lock.
#pragma once
#include "runtime.hpp"

namespace es {

// Defines the relay GUCs and the commit hook that starts the relay; called from _PG_init.
void relay_init();

// Starts this database's relay unless one runs; cheap to call often: it checks at most once
// every few seconds per backend. Never raises. For write paths (appends, outbox publishes).
void relay_request();

// pg_eventstore.projection_worker (src/pg/projection_worker.cpp): whether the relay refreshes
// async projections; its GUC is defined by projection_worker_init (called by relay_init).
extern bool projection_worker_enabled;
void projection_worker_init();
// One pass of the background projection refresh, in the relay (outside any transaction);
// never raises: every error is logged and rolled back. True when it left work behind.
bool refresh_projections();

}  // namespace es
