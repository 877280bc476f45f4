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

}  // namespace es
