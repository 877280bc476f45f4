// The two one-way doors between C++ and PostgreSQL (STYLE.md §2).
//  - pg_call: runs PostgreSQL code that may ereport and turns the error into a C++ exception,
//    so no longjmp ever crosses a live C++ destructor.
//  - guarded: wraps every SQL entry point; C++ exceptions never reach PostgreSQL, and the
//    error is reported only after the catch block has closed.
#pragma once
#include "pg.hpp"

#include <exception>
#include <string>
#include <type_traits>

#include "../core/validation.hpp"

namespace es {

// A PostgreSQL error caught by pg_call, carried as a C++ exception.
struct PgError {
  ErrorData *data;
};

// An error of ours with a SQLSTATE the user can branch on.
struct UserError {
  Problem problem;
};

[[noreturn]] inline void raise(Problem p) { throw UserError{std::move(p)}; }
[[noreturn]] inline void raise(const char *sqlstate, std::string message,
                               std::string detail = {}, std::string hint = {}) {
  throw UserError{Problem{sqlstate, std::move(message), std::move(detail), std::move(hint)}};
}

template <class F>
auto pg_call(F &&f) -> decltype(f()) {
  MemoryContext mcx = CurrentMemoryContext;
  ErrorData *volatile err = nullptr;
  if constexpr (std::is_void_v<decltype(f())>) {
    PG_TRY();
    { f(); }
    PG_CATCH();
    {
      MemoryContextSwitchTo(mcx);
      err = CopyErrorData();
      FlushErrorState();
    }
    PG_END_TRY();
    if (err) throw PgError{err};
  } else {
    static_assert(std::is_trivially_copyable_v<decltype(f())>,
                  "pg_call returns plain values; build C++ objects outside it");
    decltype(f()) volatile result{};
    PG_TRY();
    { result = f(); }
    PG_CATCH();
    {
      MemoryContextSwitchTo(mcx);
      err = CopyErrorData();
      FlushErrorState();
    }
    PG_END_TRY();
    if (err) throw PgError{err};
    return result;
  }
}

// Reports an error of ours (empty detail/hint are left out).
void report_user_error(const char *sqlstate, const char *message, const char *detail,
                       const char *hint) pg_attribute_noreturn();

// Runs `body` (which returns a Datum) and reports any exception as a PostgreSQL error.
template <class F>
Datum guarded(F &&body) {
  ErrorData *pg_error = nullptr;
  const char *user_state = nullptr;
  char user_message[2048], user_detail[2048], user_hint[1024];
  char message[256] = "";
  try {
    return body();
  } catch (const PgError &e) {
    pg_error = e.data;
  } catch (const UserError &e) {
    // Copy into PostgreSQL memory before the exception object dies.
    user_state = e.problem.sqlstate;
    strlcpy(user_message, e.problem.message.c_str(), sizeof user_message);
    strlcpy(user_detail, e.problem.detail.c_str(), sizeof user_detail);
    strlcpy(user_hint, e.problem.hint.c_str(), sizeof user_hint);
  } catch (const std::exception &e) {
    strlcpy(message, e.what(), sizeof message);
  } catch (...) {
    strlcpy(message, "unexpected C++ exception", sizeof message);
  }
  if (pg_error) ReThrowError(pg_error);
  if (user_state) report_user_error(user_state, user_message, user_detail, user_hint);
  ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("pg_eventstore: %s", message)));
  pg_unreachable();
}

}  // namespace es
