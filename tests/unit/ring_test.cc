#include "core/spsc_ring.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "core/thread_state.h"

namespace otelagent {
namespace {

// A record: producer id, sequence number, then filler whose length varies.
std::vector<uint8_t> make_record(uint32_t producer, uint32_t seq) {
  std::vector<uint8_t> r(8 + (seq * 7919u) % 300);
  std::memcpy(r.data(), &producer, 4);
  std::memcpy(r.data() + 4, &seq, 4);
  for (size_t i = 8; i < r.size(); ++i) r[i] = static_cast<uint8_t>(seq + i);
  return r;
}

bool record_intact(const uint8_t *d, uint32_t len, uint32_t *producer, uint32_t *seq) {
  std::memcpy(producer, d, 4);
  std::memcpy(seq, d + 4, 4);
  if (len != 8 + (*seq * 7919u) % 300) return false;
  for (size_t i = 8; i < len; ++i)
    if (d[i] != static_cast<uint8_t>(*seq + i)) return false;
  return true;
}

TEST(SpscRing, EveryRecordArrivesOnceInOrderUnderConcurrency) {
  SpscRing ring;
  ASSERT_TRUE(ring.init(128 * 1024));
  constexpr uint32_t kCount = 200000;
  std::atomic<bool> done{false};
  uint64_t drops = 0;
  std::vector<uint32_t> pushed;  // the sequence numbers that went in
  std::thread producer([&] {
    for (uint32_t i = 0; i < kCount; ++i) {
      auto r = make_record(0, i);
      if (ring.push(r.data(), static_cast<uint32_t>(r.size())))
        pushed.push_back(i);
      else
        ++drops;
    }
    done.store(true);
  });
  std::vector<uint32_t> got;
  bool intact = true;
  auto drain = [&] {
    ring.consume(
        [&](const uint8_t *d, uint32_t len) {
          uint32_t p = 0, s = 0;
          intact = intact && record_intact(d, len, &p, &s);
          got.push_back(s);
        },
        SIZE_MAX);
  };
  while (!done.load()) drain();
  producer.join();
  drain();
  EXPECT_TRUE(intact);
  EXPECT_EQ(got, pushed);  // exactly once, in order
  EXPECT_EQ(got.size() + drops, kCount);
  EXPECT_EQ(ring.used(), 0u);
}

TEST(SpscRing, FullRingRefusesAndCountsExactly) {
  SpscRing ring;
  ASSERT_TRUE(ring.init(128 * 1024));
  std::vector<uint8_t> rec(120);  // 8-byte header + 120 = 128 bytes a record
  uint32_t accepted = 0, refused = 0;
  for (int i = 0; i < 2000; ++i) {
    if (ring.push(rec.data(), static_cast<uint32_t>(rec.size())))
      ++accepted;
    else
      ++refused;
  }
  EXPECT_EQ(accepted, 128u * 1024 / 128);
  EXPECT_EQ(accepted + refused, 2000u);
  size_t n = ring.consume([](const uint8_t *, uint32_t) {}, SIZE_MAX);
  EXPECT_EQ(n, accepted);
  // Room again after consuming, including across the wrap point.
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(ring.push(rec.data(), 100 + static_cast<uint32_t>(i % 20)));
    ASSERT_EQ(ring.consume([](const uint8_t *, uint32_t) {}, SIZE_MAX), 1u);
  }
}

TEST(ThreadStates, ManyProducersOneConsumerExactlyOnce) {
  constexpr uint32_t kThreads = 4, kEach = 50000;
  std::atomic<uint32_t> finished{0};
  std::vector<std::thread> threads;
  std::vector<uint64_t> drops(kThreads, 0);
  for (uint32_t t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      ThreadState *st = this_thread_state();
      ASSERT_NE(st, nullptr);
      for (uint32_t i = 0; i < kEach; ++i) {
        auto r = make_record(t, i);
        if (!st->ring.push(r.data(), static_cast<uint32_t>(r.size()))) ++drops[t];
      }
      finished.fetch_add(1);
    });
  std::vector<std::set<uint32_t>> seen(kThreads);
  uint64_t duplicates = 0, corrupt = 0;
  auto drain = [&] {
    for (ThreadState *s = thread_states(); s != nullptr; s = s->next)
      s->ring.consume(
          [&](const uint8_t *d, uint32_t len) {
            uint32_t p = 0, q = 0;
            if (!record_intact(d, len, &p, &q) || p >= kThreads) {
              ++corrupt;
              return;
            }
            if (!seen[p].insert(q).second) ++duplicates;
          },
          SIZE_MAX);
  };
  while (finished.load() < kThreads) drain();
  for (auto &th : threads) th.join();
  drain();
  EXPECT_EQ(corrupt, 0u);
  EXPECT_EQ(duplicates, 0u);
  for (uint32_t t = 0; t < kThreads; ++t) EXPECT_EQ(seen[t].size() + drops[t], kEach) << t;
}

}  // namespace
}  // namespace otelagent
