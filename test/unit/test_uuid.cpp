#include <gtest/gtest.h>

#include "uuid.hpp"

using es::Uuid;

TEST(Uuid, V7CarriesTimestampVersionAndVariant) {
  const std::uint8_t rnd[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  Uuid u = es::make_uuidv7(0x0123456789ABull, rnd);
  EXPECT_EQ(es::format_uuid(u), "01234567-89ab-7fff-bfff-ffffffffffff");
}

TEST(Uuid, V7IsOrderedByTime) {
  const std::uint8_t hi[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const std::uint8_t lo[10] = {};
  EXPECT_LT(es::format_uuid(es::make_uuidv7(1000, hi)), es::format_uuid(es::make_uuidv7(1001, lo)));
}

TEST(Uuid, ParsesCanonicalUpperAndBraced) {
  Uuid u{};
  ASSERT_TRUE(es::parse_uuid("0190F5A4-1C2B-7D3E-8F40-0123456789AB", u));
  EXPECT_EQ(es::format_uuid(u), "0190f5a4-1c2b-7d3e-8f40-0123456789ab");
  ASSERT_TRUE(es::parse_uuid("{0190f5a4-1c2b-7d3e-8f40-0123456789ab}", u));
}

TEST(Uuid, RejectsMalformed) {
  Uuid u{};
  EXPECT_FALSE(es::parse_uuid("", u));
  EXPECT_FALSE(es::parse_uuid("not-a-uuid", u));
  EXPECT_FALSE(es::parse_uuid("0190f5a4-1c2b-7d3e-8f40-0123456789a", u));    // short
  EXPECT_FALSE(es::parse_uuid("0190f5a4-1c2b-7d3e-8f40-0123456789abc", u));  // long
  EXPECT_FALSE(es::parse_uuid("0190f5a4x1c2b-7d3e-8f40-0123456789ab", u));   // separator
  EXPECT_FALSE(es::parse_uuid("0190f5a4-1c2b-7d3e-8f40-0123456789ag", u));   // digit
  EXPECT_FALSE(es::parse_uuid("{0190f5a4-1c2b-7d3e-8f40-0123456789ab", u));  // brace
}
