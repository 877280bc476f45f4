// The outbox's commit-safe order and claim locks (outbox.cpp), shared with the C++ claim and
// ack (outbox_claim.cpp).
#pragma once
#include "runtime.hpp"

namespace es {

// Number of intake shards per consumer group; claim lock part kOutboxShards is the lease sweep.
constexpr int kOutboxShards = 8;

// Highest message id at or below which every message is committed or never will be.
int64 outbox_safe_horizon();

// The relay's window of message ids that became safe since this backend's previous call
// (after, upto]; the first call also covers the last 1,000 ids (es._outbox_relay_window).
void outbox_relay_window(int64 &after, int64 &upto);

// Takes a transaction-scoped claim lock of a consumer group (part 0..7: the intake of that
// shard, part 8: the lease sweep); without `wait`, false when another transaction holds it.
bool outbox_claim_lock(int32 group_id, int32 part, bool wait);

}  // namespace es
