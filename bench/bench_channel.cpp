// bench_channel.cpp: libchan against its peers, side by side, in one run.
//
// Five cases, each a family of Google Benchmark entries named
// "<case>/<peer>" (report.py groups on the part before the slash):
//
//   throughput_1p1c        1 producer, 1 consumer, one message per call
//   throughput_1p1c_batch  the same with batches of kBatch (peers with a bulk API)
//   throughput_2p2c        2 producers, 2 consumers (MPMC-capable peers only)
//   pingpong_spin          round trip; each side spins on try-receive
//   pingpong_block         round trip; each side blocks in receive and parks
//   nowaiter               one thread sends a message and receives it back:
//                          nobody is ever waiting (issue 9's guard: the
//                          send/receive fast path must not slow down)
//
// Every message is a 64-bit integer (libchan carries lch_value_int). Producers
// send (producer << 40 | sequence) and then one end marker (-1); a consumer
// stops at the first end marker it receives, so every consumer gets exactly
// one. Consumers check that each producer's sequence numbers arrive in
// increasing order and the benchmark thread checks count, sum and sum of
// squares against what was sent; ping-pong checks every echo. Any mismatch or
// library error ends the benchmark with SkipWithError.
//
// Threads: persistent and pinned (harness.hpp). 1P/1C and ping-pong: role 0
// (producer / pinger) on CPU slot 0, role 1 on slot 1. 2P/2C on two cores:
// p0 and c0 share slot 0, p1 and c1 share slot 1, so each core runs a producer
// and a consumer and both ends of the queue are contended from both cores.
//
// Figures: time is wall clock from the moment every thread of the case is at
// the start line to the moment the last one finishes (manual time, measured by
// the Team). Throughput cases report items_per_second (messages); ping-pong
// cases report ns_per_rt (nanoseconds per round trip) and items_per_second
// (round trips); libchan entries add futex_waits_per_op/futex_wakes_per_op,
// and every pingpong_block entry adds sleeps_per_rt: the voluntary context
// switches of its two threads per round trip, i.e. how often a side really
// went to sleep (each sleep costs a wake-up; on a VM that is most of the
// round trip).
// nowaiter reports ns_per_op (one send plus one receive, waiting forms), and
// for libchan syscalls_per_op, which must be 0 (else the entry errors).
// Unless the command line says otherwise the binary runs 5 repetitions in
// random order and reports only aggregates; report.py reads the medians.
// report.py compares libchan with the bounded peers and libchan_unbounded with
// the unbounded ones (moodycamel, wfcqueue, xenium_ramalhete, tbb_queue);
// SPSC-only peers appear only where each queue has one producer and one
// consumer (1P/1C, ping-pong). Other libchan_* entries and *_spin are shown
// for information and never count as "the best peer".
#include <benchmark/benchmark.h>

#include "bench_main.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "harness.hpp"
#include "peers.hpp"

namespace lchb {
namespace {

constexpr size_t kCapacity = 1024;       // bounded queues, libchan included
constexpr int64_t kMessages = 1 << 16;   // per throughput iteration, all producers
constexpr size_t kBatch = 64;            // messages per batch call
constexpr int64_t kSpinRoundTrips = 1 << 13;  // per spinning ping-pong iteration
constexpr int64_t kBlockRoundTrips = 1 << 10; // per blocking ping-pong iteration
constexpr int64_t kNoWaiterOps = 1 << 16;     // send+receive pairs per iteration

constexpr int64_t kEnd = -1; // end marker; real messages are >= 0
constexpr int kProducerShift = 40;
constexpr int64_t kSeqMask = (int64_t(1) << kProducerShift) - 1;

int64_t encode(int producer, int64_t seq)
{
    return (int64_t(producer) << kProducerShift) | seq;
}

// What one consumer saw in one iteration (written only by that consumer,
// read by the benchmark thread after Team::run()).
struct alignas(64) Tally {
    int64_t count = 0;
    uint64_t sum = 0;   // of sequence numbers, wrapping
    uint64_t sumsq = 0; // of their squares, wrapping
    std::vector<int64_t> next; // per producer: lowest sequence still allowed
    std::string bad;

    void reset(int producers)
    {
        count = 0;
        sum = sumsq = 0;
        next.assign(size_t(producers), 0);
        bad.clear();
    }
    void take(int64_t v, int64_t per_producer)
    {
        int64_t p = v >> kProducerShift, seq = v & kSeqMask;
        if (v < 0 || p >= int64_t(next.size()) || seq >= per_producer) {
            if (bad.empty())
                bad = "received a value nobody sent: " + std::to_string(v);
            return;
        }
        if (seq < next[size_t(p)]) {
            if (bad.empty())
                bad = "producer " + std::to_string(p) + ": sequence " +
                      std::to_string(seq) + " after " +
                      std::to_string(next[size_t(p)] - 1) +
                      " (reordered or duplicated)";
            return;
        }
        next[size_t(p)] = seq + 1;
        ++count;
        sum += uint64_t(seq);
        sumsq += uint64_t(seq) * uint64_t(seq);
    }
};

// After an iteration: did the consumers between them get each message once?
void check_tallies(const std::vector<Tally> &tally, int producers,
                   int64_t per_producer, ErrorSink &errors)
{
    int64_t count = 0;
    uint64_t sum = 0, sumsq = 0;
    for (const Tally &t : tally) {
        if (!t.bad.empty())
            return errors.record(t.bad);
        count += t.count;
        sum += t.sum;
        sumsq += t.sumsq;
    }
    uint64_t n = uint64_t(per_producer), P = uint64_t(producers);
    uint64_t want_sum = P * (n * (n - 1) / 2);
    uint64_t want_sumsq = P * ((n - 1) * n * (2 * n - 1) / 6);
    if (count != producers * per_producer || sum != want_sum ||
        sumsq != want_sumsq)
        errors.record("received " + std::to_string(count) + " of " +
                      std::to_string(producers * per_producer) +
                      " messages, or a wrong set of them (sum " +
                      std::to_string(sum) + ", want " +
                      std::to_string(want_sum) + ")");
}

template <class S>
void produce(S &s, int p, int64_t n, ErrorSink &errors)
{
    for (int64_t i = 0; i < n; ++i)
        if (!send_one(s, encode(p, i)))
            return errors.record("producer: " + s.error);
    if (!send_one(s, kEnd))
        errors.record("producer: " + s.error);
}

template <class S>
void produce_batches(S &s, int p, int64_t n, ErrorSink &errors)
{
    int64_t buf[kBatch];
    const int64_t total = n + 1; // the last one is the end marker
    for (int64_t start = 0; start < total; start += int64_t(kBatch)) {
        size_t k = size_t(std::min<int64_t>(int64_t(kBatch), total - start));
        for (size_t j = 0; j < k; ++j) {
            int64_t i = start + int64_t(j);
            buf[j] = i < n ? encode(p, i) : kEnd;
        }
        for (size_t off = 0; off < k;) {
            long m = send_some(s, buf + off, k - off);
            if (m <= 0 || size_t(m) > k - off)
                return errors.record("producer (batch): " +
                                     (m <= 0 ? s.error : "sent too many"));
            off += size_t(m);
        }
    }
}

template <class R>
void consume(R &r, Tally &t, int producers, int64_t per_producer,
             ErrorSink &errors)
{
    t.reset(producers);
    for (;;) {
        int64_t v;
        if (!recv_one(r, v))
            return errors.record("consumer: " + r.error);
        if (v == kEnd)
            return;
        t.take(v, per_producer);
    }
}

template <class R>
void consume_batches(R &r, Tally &t, int producers, int64_t per_producer,
                     ErrorSink &errors)
{
    t.reset(producers);
    int64_t buf[kBatch];
    for (;;) {
        long m = recv_some(r, buf, kBatch);
        if (m <= 0 || size_t(m) > kBatch)
            return errors.record("consumer (batch): " +
                                 (m <= 0 ? r.error : "received too many"));
        for (long j = 0; j < m; ++j) {
            if (buf[j] == kEnd) {
                if (j + 1 != m)
                    errors.record("consumer (batch): messages after the end "
                                  "marker in one batch");
                return;
            }
            t.take(buf[j], per_producer);
        }
    }
}

// For the libchan entries: libchan's own futex calls (process-wide debug
// counters) per message or round trip, i.e. how often it parked and woke.
template <class Peer>
class FutexCounts {
public:
    FutexCounts()
    {
        if constexpr (std::is_same_v<Peer, Libchan>)
            lch_debug_counters_get(&before_);
    }
    void report(benchmark::State &state, double ops)
    {
        if constexpr (std::is_same_v<Peer, Libchan>) {
            lch_debug_counters now;
            lch_debug_counters_get(&now);
            if (ops <= 0)
                return;
            state.counters["futex_waits_per_op"] =
                double(now.futex_waits - before_.futex_waits) / ops;
            state.counters["futex_wakes_per_op"] =
                double(now.futex_wakes - before_.futex_wakes) / ops;
        } else {
            (void)state;
            (void)ops;
        }
    }

private:
    lch_debug_counters before_{};
};

template <class Peer>
bool init_ok(benchmark::State &state, const Peer &q)
{
    if (q.init_error.empty())
        return true;
    state.SkipWithError(q.init_error.c_str());
    return false;
}

// P producers and C consumers move kMessages per iteration.
template <class Peer, bool Batch>
void throughput(benchmark::State &state, const std::string &name,
                int producers, int consumers, Config cfg)
{
    const int64_t per_producer = kMessages / producers;
    cfg.max_in_flight = size_t(per_producer) + 1;
    Peer q(cfg);
    if (!init_ok(state, q))
        return;
    std::vector<std::unique_ptr<typename Peer::Sender>> tx;
    std::vector<std::unique_ptr<typename Peer::Receiver>> rx;
    std::vector<int> slot; // role -> CPU slot; roles: producers, then consumers
    for (int p = 0; p < producers; ++p) {
        tx.push_back(std::make_unique<typename Peer::Sender>(q));
        slot.push_back(p % 2);
    }
    for (int c = 0; c < consumers; ++c) {
        rx.push_back(std::make_unique<typename Peer::Receiver>(q));
        slot.push_back((producers + c) % 2); // 1P1C: slot 1; 2P2C: c0 0, c1 1
    }
    std::vector<Tally> tally(static_cast<size_t>(consumers));
    ErrorSink errors;
    Team team(name, slot, [&](int role) {
        if (role < producers) {
            if constexpr (Batch)
                produce_batches(*tx[size_t(role)], role, per_producer, errors);
            else
                produce(*tx[size_t(role)], role, per_producer, errors);
        } else {
            size_t c = size_t(role - producers);
            if constexpr (Batch)
                consume_batches(*rx[c], tally[c], producers, per_producer,
                                errors);
            else
                consume(*rx[c], tally[c], producers, per_producer, errors);
        }
    });
    FutexCounts<Peer> futex;
    for (auto _ : state) {
        state.SetIterationTime(double(team.run()) * 1e-9);
        if (!errors.failed())
            check_tallies(tally, producers, per_producer, errors);
        if (errors.failed()) {
            state.SkipWithError(errors.message().c_str());
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * producers * per_producer);
    futex.report(state, double(state.iterations() * producers * per_producer));
}

// The calling thread's voluntary context switches so far: each one is a
// block in the kernel (a futex wait, a read of an empty pipe) that slept.
int64_t voluntary_switches()
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0)
        return 0;
    return int64_t(ru.ru_nvcsw);
}

// Round trips between two threads over two queues (there and back). Spin:
// both sides poll try_recv; otherwise both block in recv.
template <class Peer, bool Spin>
void pingpong(benchmark::State &state, const std::string &name, Config cfg,
              int64_t round_trips)
{
    static_assert(Spin || HasRecv<typename Peer::Receiver>::value,
                  "the blocking ping-pong needs a blocking receive");
    cfg.max_in_flight = 2;
    Peer there(cfg), back(cfg);
    if (!init_ok(state, there) || !init_ok(state, back))
        return;
    typename Peer::Sender tx_there(there), tx_back(back);
    typename Peer::Receiver rx_there(there), rx_back(back);
    auto receive = [](typename Peer::Receiver &r, int64_t &v) {
        if constexpr (Spin)
            return spin_recv(r, v);
        else
            return recv_one(r, v);
    };
    ErrorSink errors;
    std::atomic<int64_t> sleeps{0}; // blocking: both threads' sleeps
    auto round_trip_loop = [&](int role) {
        for (int64_t i = 0; i < round_trips; ++i) {
            int64_t v = -1;
            if (role == 0) { // ping, then wait for the echo
                if (!send_one(tx_there, i))
                    return errors.record("ping: " + tx_there.error);
                if (!receive(rx_back, v))
                    return errors.record("ping: " + rx_back.error);
            } else { // wait for the ping, echo it
                if (!receive(rx_there, v))
                    return errors.record("pong: " + rx_there.error);
                if (v == i && !send_one(tx_back, v))
                    return errors.record("pong: " + tx_back.error);
            }
            if (v != i)
                return errors.record("round trip " + std::to_string(i) +
                                     " received " + std::to_string(v));
        }
    };
    Team team(name, {0, 1}, [&](int role) {
        if constexpr (Spin) {
            round_trip_loop(role);
        } else {
            int64_t before = voluntary_switches();
            round_trip_loop(role);
            // Relaxed: Team::run's done_ handshake (acq_rel/acquire) orders
            // it before the load below.
            sleeps.fetch_add(voluntary_switches() - before,
                             std::memory_order_relaxed);
        }
    });
    FutexCounts<Peer> futex;
    double ns = 0;
    for (auto _ : state) {
        int64_t t = team.run();
        ns += double(t);
        state.SetIterationTime(double(t) * 1e-9);
        if (errors.failed()) {
            state.SkipWithError(errors.message().c_str());
            break;
        }
    }
    double rts = double(state.iterations()) * double(round_trips);
    state.SetItemsProcessed(int64_t(rts));
    state.counters["ns_per_rt"] = rts > 0 ? ns / rts : 0.0;
    if constexpr (!Spin) {
        if (rts > 0)
            state.counters["sleeps_per_rt"] = // after the last team.run()
                double(sleeps.load(std::memory_order_relaxed)) / rts;
    }
    futex.report(state, rts);
}

// One thread: send a message, receive it back, kNoWaiterOps times. Nobody
// waits on either side, so this is the cost of the path every uncontended
// call takes (what issue 9's select and fd waiters must not slow down).
template <class Peer>
void nowaiter(benchmark::State &state, Config cfg)
{
    Peer q(cfg);
    if (!init_ok(state, q))
        return;
    typename Peer::Sender tx(q);
    typename Peer::Receiver rx(q);
    lch_debug_counters before{}, after{};
    lch_debug_counters_get(&before);
    double ns = 0;
    for (auto _ : state) {
        const int64_t t0 = now_ns();
        for (int64_t i = 0; i < kNoWaiterOps; ++i) {
            int64_t v = -1;
            if (!send_one(tx, i) || !recv_one(rx, v) || v != i) {
                state.SkipWithError(("send+receive " + std::to_string(i) +
                                     ": " + tx.error + rx.error)
                                        .c_str());
                return;
            }
        }
        const int64_t t = now_ns() - t0;
        ns += double(t);
        state.SetIterationTime(double(t) * 1e-9);
    }
    double ops = double(state.iterations()) * double(kNoWaiterOps);
    state.SetItemsProcessed(int64_t(ops));
    state.counters["ns_per_op"] = ops > 0 ? ns / ops : 0.0;
    if constexpr (std::is_same_v<Peer, Libchan>) {
        lch_debug_counters_get(&after);
        uint64_t calls = (after.futex_waits - before.futex_waits) +
                         (after.futex_wakes - before.futex_wakes) +
                         (after.fd_signals - before.fd_signals);
        state.counters["syscalls_per_op"] = ops > 0 ? double(calls) / ops : 0;
        if (calls != 0)
            state.SkipWithError("libchan made system calls with nobody "
                                "waiting");
    }
}

// ---- registration ----------------------------------------------------------

void add(const std::string &name, std::function<void(benchmark::State &)> fn)
{
    benchmark::RegisterBenchmark(name.c_str(), [fn](benchmark::State &st) {
        fn(st);
    })->UseManualTime()->Unit(benchmark::kMicrosecond);
}

template <class Peer>
void add_1p1c(const char *peer, Config cfg = {})
{
    std::string n = std::string("throughput_1p1c/") + peer;
    add(n, [n, cfg](benchmark::State &st) {
        throughput<Peer, false>(st, n, 1, 1, cfg);
    });
}

template <class Peer>
void add_1p1c_batch(const char *peer, Config cfg = {})
{
    static_assert(kHasBulk<Peer>, "the batch case is for peers with a bulk API");
    std::string n = std::string("throughput_1p1c_batch/") + peer;
    add(n, [n, cfg](benchmark::State &st) {
        throughput<Peer, true>(st, n, 1, 1, cfg);
    });
}

template <class Peer>
void add_2p2c(const char *peer, Config cfg = {})
{
    std::string n = std::string("throughput_2p2c/") + peer;
    add(n, [n, cfg](benchmark::State &st) {
        throughput<Peer, false>(st, n, 2, 2, cfg);
    });
}

template <class Peer>
void add_pingpong_spin(const char *peer, Config cfg = {})
{
    std::string n = std::string("pingpong_spin/") + peer;
    cfg.nonblocking_recv = true;
    add(n, [n, cfg](benchmark::State &st) {
        pingpong<Peer, true>(st, n, cfg, kSpinRoundTrips);
    });
}

template <class Peer>
void add_pingpong_block(const char *peer, Config cfg = {})
{
    std::string n = std::string("pingpong_block/") + peer;
    add(n, [n, cfg](benchmark::State &st) {
        pingpong<Peer, false>(st, n, cfg, kBlockRoundTrips);
    });
}

template <class Peer>
void add_nowaiter(const char *peer, Config cfg = {})
{
    std::string n = std::string("nowaiter/") + peer;
    add(n, [cfg](benchmark::State &st) { nowaiter<Peer>(st, cfg); });
}

void register_all()
{
    Config bounded;
    bounded.capacity = kCapacity;
    Config unbounded = bounded;
    unbounded.capacity = 0; // libchan only: 0 = unbounded
    Config parked = bounded;
    parked.spin_ns = 0; // libchan: park on the futex at once
    Config parked_unbounded = parked;
    parked_unbounded.capacity = 0;

    // 1 producer / 1 consumer, one message per call: every peer.
    add_1p1c<Libchan>("libchan", bounded);
    add_1p1c<Libchan>("libchan_unbounded", unbounded);
    add_1p1c<Moodycamel>("moodycamel", bounded);
    add_1p1c<ReaderWriterQueue>("readerwriterqueue", bounded);
    add_1p1c<BoostQueue>("boost_queue", bounded);
    add_1p1c<BoostSpsc>("boost_spsc", bounded);
    add_1p1c<CkRing<false>>("ck_ring", bounded);
    add_1p1c<Wfcq<false>>("wfcqueue", bounded);
    add_1p1c<MutexDeque>("mutex_deque", bounded);
    add_1p1c<Pipe>("pipe", bounded);
    add_1p1c<AtomicQ<false>>("atomic_queue", bounded);
    add_1p1c<AtomicQOptimist>("atomic_queue_optimist", bounded);
    add_1p1c<AtomicQ<true>>("atomic_queue_spsc", bounded);
    add_1p1c<XeniumVyukov>("xenium_vyukov", bounded);
    add_1p1c<XeniumRamalhete>("xenium_ramalhete", bounded);
    add_1p1c<TbbBounded>("tbb_bounded", bounded);
    add_1p1c<TbbQueue>("tbb_queue", bounded);

    // Batches: peers with a bulk API (ReaderWriterQueue, boost::lockfree::queue,
    // ck_ring 0.7.1, atomic_queue, xenium and oneTBB's queues have none).
    add_1p1c_batch<Libchan>("libchan", bounded);
    add_1p1c_batch<Libchan>("libchan_unbounded", unbounded);
    add_1p1c_batch<Moodycamel>("moodycamel", bounded);
    add_1p1c_batch<BoostSpsc>("boost_spsc", bounded);
    add_1p1c_batch<Wfcq<false>>("wfcqueue", bounded);
    add_1p1c_batch<MutexDeque>("mutex_deque", bounded);
    add_1p1c_batch<Pipe>("pipe", bounded);

    // 2 producers / 2 consumers: MPMC-capable peers only. atomic_queue's MPMC
    // ring is left out: its slots carry no lap number, so when a thread is
    // preempted inside push or pop (here two threads share each core) a slot
    // can pass a later lap's element before an earlier one, and consumers
    // then see one producer's messages out of order (seen here in every
    // run, try_push/try_pop and push/pop alike, about one ring apart).
    add_2p2c<Libchan>("libchan", bounded);
    add_2p2c<Libchan>("libchan_unbounded", unbounded);
    add_2p2c<Moodycamel>("moodycamel", bounded);
    add_2p2c<BoostQueue>("boost_queue", bounded);
    add_2p2c<CkRing<true>>("ck_ring", bounded);
    add_2p2c<Wfcq<true>>("wfcqueue", bounded);
    add_2p2c<MutexDeque>("mutex_deque", bounded);
    add_2p2c<Pipe>("pipe", bounded);
    add_2p2c<XeniumVyukov>("xenium_vyukov", bounded);
    add_2p2c<XeniumRamalhete>("xenium_ramalhete", bounded);
    add_2p2c<TbbBounded>("tbb_bounded", bounded);
    add_2p2c<TbbQueue>("tbb_queue", bounded);

    // Spinning ping-pong: each direction is one producer and one consumer, so
    // SPSC peers qualify; libchan polls with timeout 0. atomic_queue_optimist
    // is left out: its receive here would be try_pop, as atomic_queue's.
    add_pingpong_spin<Libchan>("libchan", bounded);
    add_pingpong_spin<Libchan>("libchan_unbounded", unbounded);
    add_pingpong_spin<Moodycamel>("moodycamel", bounded);
    add_pingpong_spin<ReaderWriterQueue>("readerwriterqueue", bounded);
    add_pingpong_spin<BoostQueue>("boost_queue", bounded);
    add_pingpong_spin<BoostSpsc>("boost_spsc", bounded);
    add_pingpong_spin<CkRing<false>>("ck_ring", bounded);
    add_pingpong_spin<Wfcq<false>>("wfcqueue", bounded);
    add_pingpong_spin<MutexDeque>("mutex_deque", bounded);
    add_pingpong_spin<Pipe>("pipe", bounded);
    add_pingpong_spin<AtomicQ<false>>("atomic_queue", bounded);
    add_pingpong_spin<AtomicQ<true>>("atomic_queue_spsc", bounded);
    add_pingpong_spin<XeniumVyukov>("xenium_vyukov", bounded);
    add_pingpong_spin<XeniumRamalhete>("xenium_ramalhete", bounded);
    add_pingpong_spin<TbbBounded>("tbb_bounded", bounded);
    add_pingpong_spin<TbbQueue>("tbb_queue", bounded);

    // Blocking ping-pong, waiter parked: libchan with spin_ns = 0 against a
    // raw futex hand-off and the peers that can block. The _spin entries spin
    // before parking and are for information only. atomic_queue_optimist's
    // pop waits by spinning and never parks, so it is not here.
    add_pingpong_block<Libchan>("libchan", parked);
    add_pingpong_block<Libchan>("libchan_unbounded", parked_unbounded);
    add_pingpong_block<Libchan>("libchan_spin", bounded);
    add_pingpong_block<FutexMailbox>("futex", bounded);
    add_pingpong_block<MutexDeque>("mutex_deque", bounded);
    add_pingpong_block<Pipe>("pipe", bounded);
    add_pingpong_block<MoodycamelBlocking<NoSpinTraits>>("moodycamel_blocking",
                                                         bounded);
    add_pingpong_block<
        MoodycamelBlocking<moodycamel::ConcurrentQueueDefaultTraits>>(
        "moodycamel_blocking_spin", bounded);
    add_pingpong_block<TbbBounded>("tbb_bounded", bounded);

    // Nobody waiting: one thread, send then receive (waiting forms where
    // the peer has them; they never need to wait here).
    add_nowaiter<Libchan>("libchan", bounded);
    add_nowaiter<Libchan>("libchan_unbounded", unbounded);
    add_nowaiter<Moodycamel>("moodycamel", bounded);
    add_nowaiter<BoostQueue>("boost_queue", bounded);
    add_nowaiter<CkRing<true>>("ck_ring", bounded);
    add_nowaiter<MutexDeque>("mutex_deque", bounded);
    add_nowaiter<AtomicQ<false>>("atomic_queue", bounded);
    add_nowaiter<XeniumVyukov>("xenium_vyukov", bounded);
    add_nowaiter<XeniumRamalhete>("xenium_ramalhete", bounded);
    add_nowaiter<TbbBounded>("tbb_bounded", bounded);
    add_nowaiter<TbbQueue>("tbb_queue", bounded);
}

} // namespace
} // namespace lchb

int main(int argc, char **argv)
{
    if (!lchb_main::initialize(argc, argv))
        return 1;
    benchmark::AddCustomContext("lch_bench.pinning",
                                lchb::Cpus::get().describe());
    benchmark::AddCustomContext(
        "lch_bench.sizes",
        "capacity=" + std::to_string(lchb::kCapacity) +
            " messages/iter=" + std::to_string(lchb::kMessages) +
            " batch=" + std::to_string(lchb::kBatch) +
            " spin_rt/iter=" + std::to_string(lchb::kSpinRoundTrips) +
            " block_rt/iter=" + std::to_string(lchb::kBlockRoundTrips) +
            " nowaiter_ops/iter=" + std::to_string(lchb::kNoWaiterOps));
    lchb::register_all();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
