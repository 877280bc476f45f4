// Documented input limits and the SQLSTATEs users branch on (README "Error codes").
#pragma once
#include <cstddef>

namespace es {

constexpr std::size_t kMaxStreamIdBytes = 1024;
constexpr std::size_t kMaxEventTypeBytes = 256;
constexpr std::size_t kMaxIdempotencyKeyBytes = 512;

// SQLSTATE class "ES": one code per outcome a client handles.
namespace sqlstate {
constexpr const char *kWrongExpectedVersion = "ES001";
constexpr const char *kIdempotencyKeyReused = "ES002";
constexpr const char *kDuplicateEventId = "ES003";
constexpr const char *kInvalidStreamId = "ES010";
constexpr const char *kInvalidEventsPayload = "ES011";
constexpr const char *kEmptyEvents = "ES012";
constexpr const char *kInvalidEventType = "ES013";
constexpr const char *kInvalidEventId = "ES014";
constexpr const char *kInvalidEventMetadata = "ES015";
constexpr const char *kInvalidEvent = "ES016";
constexpr const char *kUnknownStore = "ES017";
constexpr const char *kInvalidArgument = "ES018";
constexpr const char *kInvalidIdempotencyKey = "ES019";
constexpr const char *kAppendOnly = "ES020";
constexpr const char *kInvalidDirectInsert = "ES021";
constexpr const char *kSerializableRead = "ES022";
constexpr const char *kPositionLimit = "ES023";
constexpr const char *kStandbyRead = "ES024";
constexpr const char *kPositionSequenceAltered = "ES025";
}  // namespace sqlstate

}  // namespace es
