#include <gtest/gtest.h>

#include <string>

#include "outbox_shard.hpp"

namespace {

std::string hex(const es::Md5Digest &d) {
  static const char *digits = "0123456789abcdef";
  std::string out;
  for (std::uint8_t b : d) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::string md5_hex(const std::string &s) { return hex(es::md5(s.data(), s.size())); }

// "abcd...zabc..." of n bytes.
std::string letters(std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += static_cast<char>('a' + i % 26);
  return s;
}

}  // namespace

TEST(OutboxShard, Md5MatchesRfc1321TestSuite) {
  EXPECT_EQ(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(md5_hex("a"), "0cc175b9c0f1b6a831c399e269772661");
  EXPECT_EQ(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(md5_hex("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_EQ(md5_hex("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b");
  EXPECT_EQ(md5_hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
            "d174ab98d277d9f5a5611c2c9f419d9f");
  EXPECT_EQ(md5_hex(std::string(
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890")),
            "57edf4a22be3c955ac49da2e2107b67a");
}

TEST(OutboxShard, Md5AtBlockAndPaddingBoundaries) {
  // Expected values from Python's hashlib.
  EXPECT_EQ(md5_hex(letters(55)), "0d7ae056b2f015cd7dc67494efd658f1");
  EXPECT_EQ(md5_hex(letters(56)), "31fcfb5165169eb55898e7e4cf34d19a");
  EXPECT_EQ(md5_hex(letters(63)), "1b30c0670c15e7da3c2ba7bce77ebe99");
  EXPECT_EQ(md5_hex(letters(64)), "a2eaf6295c32adc403865fd96a2f182b");
  EXPECT_EQ(md5_hex(letters(65)), "eba2cce0ca8df47e62414a736b3105a2");
  EXPECT_EQ(md5_hex(letters(119)), "b05187e08da41fa3ef16bd56afaafd99");
  EXPECT_EQ(md5_hex(letters(120)), "62af9b597a9f55e16ab2b897387fc052");
  EXPECT_EQ(md5_hex(letters(1000)), "303fb697b589019cb3edba04b794e575");
  EXPECT_EQ(md5_hex("\xc3\xbc"), "c03410a5204b21cd8229ff754688d743");  // "ü" in UTF-8
}

TEST(OutboxShard, KeyShardIsTheDigestsFirstByteAndSeven) {
  // md5("") starts with 0xd4, md5("a") with 0x0c, md5("abc") with 0x90.
  EXPECT_EQ(es::outbox_key_shard("", 0), 0xd4 & 7);
  EXPECT_EQ(es::outbox_key_shard("a", 1), 0x0c & 7);
  EXPECT_EQ(es::outbox_key_shard("abc", 3), 0x90 & 7);
}

TEST(OutboxShard, KeylessShardsGoInRunsOfSixteenIds) {
  EXPECT_EQ(es::outbox_id_shard(0), 0);
  EXPECT_EQ(es::outbox_id_shard(15), 0);
  EXPECT_EQ(es::outbox_id_shard(16), 1);
  EXPECT_EQ(es::outbox_id_shard(127), 7);
  EXPECT_EQ(es::outbox_id_shard(128), 0);
  EXPECT_EQ(es::outbox_id_shard((std::int64_t{1} << 40) + 48), 3);
}
