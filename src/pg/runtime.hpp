// Backend-wide state shared by the entry points: the store cache, the privileged-owner switch,
// the "inside es.append" flag the guard triggers honour, and SPI helpers.
#pragma once
#include "guard.hpp"

namespace es {

// What the backend caches about one event table.
struct StoreInfo {
  Oid store;            // hash key
  Oid position_seq;     // the table's global_position sequence
  bool valid;
  SPIPlanPtr last_version;    // SELECT newest stream_version of a stream
  SPIPlanPtr insert_event;    // INSERT ... ON CONFLICT DO NOTHING (run as the caller)
  SPIPlanPtr insert_batch;    // the same for many events of one stream, from arrays (unnest)
  SPIPlanPtr read_all;        // the global-order page query
  SPIPlanPtr read_stream_forward;   // one stream from a version up (read_stream.cpp, lazily)
  SPIPlanPtr read_stream_backward;  // one stream from a version down (read_stream.cpp, lazily)
  // The table's part of direct_insert's verdict (direct_insert.cpp): 0 not checked since the
  // last invalidation, 1 yes, -1 no; the standard columns' attnums; the arbiter index.
  int direct_state;
  AttrNumber direct_columns[8];
  Oid arbiter_index;
  // es.read_all (read_all.cpp): every position up to it is final (committed or never to be),
  // as this backend learnt from a safe horizon or a gap-free page read on from below it;
  // 0 after an invalidation.
  int64 settled;
};

// Looks up (and caches) an event table; raises ES017 when `store` is not one.
// Must run inside an SPI connection.
StoreInfo *lookup_store(Oid store);

// Enables the inline projection trigger pg_restore left disabled on an extension-owned store
// (src/pg/projection.cpp; see es._projection_restored). es.append calls it first, before the
// store lookup prepares its INSERT (which takes ROW EXCLUSIVE): SHARE ROW EXCLUSIVE, taken only
// when there is something to enable, must not be an upgrade from it (two first appends would
// deadlock).
void enable_restored_inline_trigger(Oid store);

// Quoted, schema-qualified name of a relation (palloc'd).
const char *qualified_name(Oid rel);

// Prepares and keeps a plan with a fixed search_path (pg_catalog, pg_temp), so that
// objects a caller put on its search_path can never be picked up. `cursor_options` as for
// SPI_prepare_cursor, e.g. CURSOR_OPT_GENERIC_PLAN.
SPIPlanPtr prepare_kept(const char *sql, int nargs, Oid *types, int cursor_options = 0);
// The same, for a plan that lives only until SPI_finish.
SPIPlanPtr prepare_fixed(const char *sql, int nargs, Oid *types, int cursor_options = 0);

// Whose call the backend is serving: while an AsExtensionOwner is active, the identity it
// replaced (the caller); AsCaller switches back to it.
struct CallerFrame {
  bool owner_active;
  Oid user;
  int context;
};

// Runs the enclosed work as the owner of schema `es` (the extension owner) and restores the
// caller's identity afterwards, also when an exception passes.
class AsExtensionOwner {
 public:
  AsExtensionOwner();
  ~AsExtensionOwner();
  AsExtensionOwner(const AsExtensionOwner &) = delete;
  AsExtensionOwner &operator=(const AsExtensionOwner &) = delete;

 private:
  Oid saved_user_;
  int saved_context_;
  CallerFrame saved_frame_;
};

// Runs the enclosed work as the caller an enclosing AsExtensionOwner serves (the current
// identity when none is active): user code fired from inside an entry point, such as inline
// projection handlers run by the trigger during es.append, never runs as the extension owner.
// Nested entry points called from that code record their own caller.
class AsCaller {
 public:
  AsCaller();
  ~AsCaller();
  AsCaller(const AsCaller &) = delete;
  AsCaller &operator=(const AsCaller &) = delete;
  Oid user() const { return user_; }

 private:
  int guc_nest_;
  Oid saved_user_;
  int saved_context_;
  CallerFrame saved_frame_;
  Oid user_;
};

// Runs the enclosed work as another identity, e.g. the caller again inside AsExtensionOwner:
// code a table owner attached to a store (triggers, defaults, constraints) must never run with
// the extension owner's rights.
class AsUser {
 public:
  AsUser(Oid user, int security_context);
  ~AsUser();
  AsUser(const AsUser &) = delete;
  AsUser &operator=(const AsUser &) = delete;

 private:
  Oid saved_user_;
  int saved_context_;
};

// Marks the INSERT es.append is running into `store`. The guard triggers let exactly its rows
// through: same table, fired by that statement itself, not by a user trigger, default or
// constraint function it runs (those are deeper in the trigger stack, or another table).
class AppendInsert {
 public:
  explicit AppendInsert(Oid store);
  ~AppendInsert();
  AppendInsert(const AppendInsert &) = delete;
  AppendInsert &operator=(const AppendInsert &) = delete;

 private:
  Oid saved_store_;
  int saved_depth_;
};
// True for a row of es.append's own INSERT into `rel`: `from_trigger` when asked by a trigger
// of that INSERT, false when asked by a trigger's WHEN clause (evaluated one level up).
bool is_append_insert(Oid rel, bool from_trigger);

// Allows the update guard to let rows through (es.redact_stream only).
class RewriteScope {
 public:
  RewriteScope();
  ~RewriteScope();
  RewriteScope(const RewriteScope &) = delete;
  RewriteScope &operator=(const RewriteScope &) = delete;
};
bool rewrite_allowed();

// Connects SPI for the lifetime of the object, with search_path fixed to pg_catalog, pg_temp:
// a kept plan is re-parsed under the search_path current when it runs (plancache.c
// RevalidateCachedQuery), so fixing it at prepare time alone would let a caller's objects
// into plans that run as the extension owner.
// Pinning the path costs a GUC nest level and two search_path assignments (~6,000
// instructions); an entry point whose usual call runs no SPI statement (es.append's direct
// path, an idle es.read_all poll) opens the connection with kOnFirstStatement and pins only
// when it runs one: every SPI statement under such a connection must be preceded by
// pin_search_path(). Until then the entry point resolves no names (catalog lookups by OID,
// index scans, fmgr calls only).
class SpiConnection {
 public:
  enum class Pin { kNow, kOnFirstStatement };
  explicit SpiConnection(Pin pin = Pin::kNow);
  ~SpiConnection();
  SpiConnection(const SpiConnection &) = delete;
  SpiConnection &operator=(const SpiConnection &) = delete;

 private:
  friend void pin_search_path();
  void pin();
  int guc_nest_;               // 0 while not pinned
  SpiConnection *enclosing_;   // the connection this one is nested in
};

// Pins the search_path of the innermost SpiConnection if it is not pinned yet (a no-op for a
// kNow connection). Call it before every SPI statement that may run under a kOnFirstStatement
// connection (and before executing a kept plan anywhere else it costs nothing).
void pin_search_path();

// The search_path of the caller of the outermost SpiConnection (nullptr outside one): user
// code (handlers, reducers) runs with it again.
const char *caller_search_path();

// Runs a read-only kept plan under the active snapshot, straight into the tuplestore of the
// materialized SRF `fcinfo` (InitMaterializedSRF done; it spills to disk past work_mem): no
// SPI tuple table in between. The plan's columns must match the SRF's result type. Runs
// inside an SpiConnection, which it pins, and sets enable_sort = off until that connection
// closes: plans are (re)built here without sorts, i.e. as the ordered index range scans of the
// reads (prepared with CURSOR_OPT_GENERIC_PLAN), whatever the table's statistics.
// With `run`, the plan's first column must be a bigint: the rows are checked to be `run->next`,
// `run->next + 1`, ... as they are stored; the first row that is not stops the scan, unstored,
// and sets `run->broken` (the result then holds the rows of the run only).
struct PositionRun {
  int64 next;   // in: the first value expected; out: one past the last consecutive one stored
  bool broken;  // out: a row broke the run (or the column was NULL)
};
void execute_into_result(FunctionCallInfo fcinfo, SPIPlanPtr plan, int nargs, const Oid *types,
                         const Datum *values, const bool *nulls, PositionRun *run = nullptr);

// Raises ES018 for a negative count argument.
void check_non_negative(const char *argument, int64 value);

// The caller must hold `mode` (an AclMode such as ACL_INSERT) on `store`; raises 42501.
void require_privilege(Oid store, AclMode mode, const char *what);

}  // namespace es
