// The intake shard of an outbox message (docs/outbox.md "Claiming"), backend-free: the same
// function as the SQL es._outbox_shard(key, id) — the first byte of md5(key) & 7 for a keyed
// message, (id >> 4) & 7 without a key — so es.outbox_publish computes it without OpenSSL's
// per-call set-up. sql/outbox_publish.sql checks both agree on thousands of keys.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

namespace es {

constexpr int kOutboxShards = 8;

using Md5Digest = std::array<std::uint8_t, 16>;

// MD5 (RFC 1321) of `len` bytes.
Md5Digest md5(const void *data, std::size_t len);

// The shard of a message with a key of `len` bytes (the key's bytes as SQL's md5(text) sees them).
inline int outbox_key_shard(const void *key, std::size_t len) { return md5(key, len)[0] & 7; }

// The shard of a key-less message: runs of 16 consecutive ids share one.
inline int outbox_id_shard(std::int64_t id) { return static_cast<int>((id >> 4) & 7); }

}  // namespace es
