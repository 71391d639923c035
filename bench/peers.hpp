// peers.hpp: one small adapter per queue under test, libchan and its peers.
//
// Every adapter carries a 64-bit integer per message and has the same shape,
// so the cases in bench_channel.cpp are written once as templates:
//
//   struct Peer {
//     explicit Peer(const Config &);
//     std::string init_error;           // non-empty: construction failed
//     struct Sender : Endpoint {        // one per sending thread
//       explicit Sender(Peer &);
//       Op   try_send(int64_t v);                        // never waits
//       bool send(int64_t v);                            // optional: waits
//       long try_send_batch(const int64_t *v, size_t n); // optional bulk
//       long send_batch(const int64_t *v, size_t n);     // optional: waits
//     };
//     struct Receiver : Endpoint {      // one per receiving thread
//       explicit Receiver(Peer &);
//       Op   try_recv(int64_t &v);                       // never waits
//       bool recv(int64_t &v);                           // optional: waits
//       long try_recv_batch(int64_t *out, size_t n);     // optional bulk
//       long recv_batch(int64_t *out, size_t n);         // optional: waits
//     };
//   };
//
// try_send may be left out where send exists (the pipe and the futex mailbox
// only have waiting forms). Batch calls return how many messages moved (>= 1
// for the waiting forms, 0 = nothing possible now for the try forms) or -1 on
// error. Where an optional operation is missing, the free functions at the
// bottom (send_one, recv_one, send_some, recv_some) spin on the try form with
// Backoff: a peer without a blocking receive is a spinning consumer, as the
// benchmark spec asks. Errors leave a message in Endpoint::error.
//
// Capacity: bounded peers get Config::capacity slots (1024 by default, the
// same as the bounded libchan channel). moodycamel ConcurrentQueue, liburcu's
// wfcqueue, xenium's ramalhete_queue, oneTBB's concurrent_queue and
// libchan_unbounded are unbounded by design (report.py compares them with
// libchan_unbounded, and the bounded ones with libchan).
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <atomic_queue/atomic_queue.h>
#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>
#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/concurrentqueue.h>
#include <oneapi/tbb/concurrent_queue.h>
#include <readerwriterqueue/readerwriterqueue.h>
#include <urcu/wfcqueue.h> // out-of-line calls: no _LGPL_SOURCE (LGPL stays in the .so)
#include <xenium/policy.hpp>
#include <xenium/ramalhete_queue.hpp>
#include <xenium/reclamation/generic_epoch_based.hpp>
#include <xenium/vyukov_bounded_queue.hpp>

#include "ck_ring_shim.h"
#include "harness.hpp"
#include "libchan/libchan.h"

namespace lchb {

struct Config {
    size_t capacity = 1024;      // slots for bounded queues; libchan: 0 = unbounded
    int64_t spin_ns = -1;        // libchan: < 0 default spin, 0 park at once
    size_t max_in_flight = 1024; // wfcqueue: nodes one Sender may have queued
    bool nonblocking_recv = false; // pipe: O_NONBLOCK read end, for try_recv
};

enum class Op { kOk, kWouldBlock, kError };

struct Endpoint {
    std::string error;
    Op fail(std::string msg)
    {
        error = std::move(msg);
        return Op::kError;
    }
};

// ---- libchan ---------------------------------------------------------------

class Libchan {
public:
    explicit Libchan(const Config &cfg)
    {
        lch_channel_opts o{};
        o.capacity = cfg.capacity;
        o.name = nullptr;
        o.spin_ns = cfg.spin_ns;
        int rc = lch_channel_create_opts(&ch_, &o);
        if (rc != LCH_OK)
            init_error = std::string("lch_channel_create_opts: ") +
                         lch_strerror(rc);
    }
    ~Libchan() { lch_channel_unref(ch_); }
    Libchan(const Libchan &) = delete;
    Libchan &operator=(const Libchan &) = delete;

    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(Libchan &p) : ch(p.ch_) {}
        Op try_send(int64_t v)
        {
            int rc = lch_channel_send(ch, lch_value_int(v), LCH_NOWAIT);
            return rc == LCH_OK       ? Op::kOk
                   : rc == LCH_EAGAIN ? Op::kWouldBlock
                                      : fail(msg("lch_channel_send", rc));
        }
        bool send(int64_t v)
        {
            int rc = lch_channel_send(ch, lch_value_int(v), LCH_FOREVER);
            return rc == LCH_OK || (fail(msg("lch_channel_send", rc)), false);
        }
        long send_batch(const int64_t *v, size_t n)
        {
            n = std::min(n, kMaxBatch);
            for (size_t i = 0; i < n; ++i)
                buf[i] = lch_value_int(v[i]);
            size_t sent = 0;
            int rc = lch_channel_send_batch(ch, buf, n, &sent, LCH_FOREVER);
            if (rc != LCH_OK || sent == 0 || sent > n)
                return fail(msg("lch_channel_send_batch", rc)), -1;
            return long(sent);
        }
        lch_channel *ch;
        lch_value buf[64];
    };

    struct Receiver : Endpoint {
        explicit Receiver(Libchan &p) : ch(p.ch_) {}
        Op try_recv(int64_t &v)
        {
            lch_value x;
            int rc = lch_channel_recv(ch, &x, LCH_NOWAIT);
            if (rc == LCH_EAGAIN)
                return Op::kWouldBlock;
            if (rc != LCH_OK)
                return fail(msg("lch_channel_recv", rc));
            return take(x, v);
        }
        bool recv(int64_t &v)
        {
            lch_value x;
            int rc = lch_channel_recv(ch, &x, LCH_FOREVER);
            if (rc != LCH_OK)
                return fail(msg("lch_channel_recv", rc)), false;
            return take(x, v) == Op::kOk;
        }
        long recv_batch(int64_t *out, size_t n)
        {
            n = std::min(n, kMaxBatch);
            size_t got = 0;
            int rc = lch_channel_recv_batch(ch, buf, n, &got, LCH_FOREVER);
            if (rc != LCH_OK || got == 0 || got > n)
                return fail(msg("lch_channel_recv_batch", rc)), -1;
            for (size_t i = 0; i < got; ++i) {
                if (buf[i].kind != LCH_INT)
                    return fail("lch_channel_recv_batch: not an int"), -1;
                out[i] = buf[i].u.i;
            }
            return long(got);
        }
        Op take(const lch_value &x, int64_t &v)
        {
            if (x.kind != LCH_INT)
                return fail("lch_channel_recv: received a non-int value");
            v = x.u.i;
            return Op::kOk;
        }
        lch_channel *ch;
        lch_value buf[64];
    };

private:
    static constexpr size_t kMaxBatch = 64;
    static std::string msg(const char *fn, int rc)
    {
        return std::string(fn) + ": " + lch_err_name(rc) + " (" +
               lch_strerror(rc) + ")";
    }
    lch_channel *ch_ = nullptr;
};

// ---- moodycamel ConcurrentQueue (MPMC, unbounded) ----------------------------
// Used with explicit producer and consumer tokens, which the author recommends
// for best throughput. enqueue() only fails when memory runs out; the
// capacity is a pre-allocation hint, the queue grows past it.

class Moodycamel {
public:
    explicit Moodycamel(const Config &cfg)
        : q_(std::max<size_t>(cfg.capacity, 1024), /*explicit producers*/ 4,
             /*implicit producers*/ 0)
    {
    }
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(Moodycamel &p) : q(p.q_), tok(p.q_) {}
        Op try_send(int64_t v)
        {
            return q.enqueue(tok, v) ? Op::kOk : fail("enqueue: out of memory");
        }
        long send_batch(const int64_t *v, size_t n)
        {
            if (!q.enqueue_bulk(tok, v, n))
                return fail("enqueue_bulk: out of memory"), -1;
            return long(n);
        }
        moodycamel::ConcurrentQueue<int64_t> &q;
        moodycamel::ProducerToken tok;
    };

    struct Receiver : Endpoint {
        explicit Receiver(Moodycamel &p) : q(p.q_), tok(p.q_) {}
        Op try_recv(int64_t &v)
        {
            return q.try_dequeue(tok, v) ? Op::kOk : Op::kWouldBlock;
        }
        long try_recv_batch(int64_t *out, size_t n)
        {
            return long(q.try_dequeue_bulk(tok, out, n));
        }
        moodycamel::ConcurrentQueue<int64_t> &q;
        moodycamel::ConsumerToken tok;
    };

private:
    moodycamel::ConcurrentQueue<int64_t> q_;
};

// ---- moodycamel BlockingConcurrentQueue ------------------------------------
// wait_dequeue() waits on a semaphore that first spins MAX_SEMA_SPINS times
// (10000 by default). The blocking ping-pong wants the waiter parked, so the
// peer used for the target sets it to 0; the default is reported as
// moodycamel_blocking_spin, for information, like libchan_spin.

struct NoSpinTraits : moodycamel::ConcurrentQueueDefaultTraits {
    static const int MAX_SEMA_SPINS = 0;
};

template <class Traits>
class MoodycamelBlocking {
    using Queue = moodycamel::BlockingConcurrentQueue<int64_t, Traits>;

public:
    explicit MoodycamelBlocking(const Config &cfg)
        : q_(std::max<size_t>(cfg.capacity, 1024))
    {
    }
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(MoodycamelBlocking &p) : q(p.q_), tok(p.q_) {}
        Op try_send(int64_t v)
        {
            return q.enqueue(tok, v) ? Op::kOk : fail("enqueue: out of memory");
        }
        Queue &q;
        typename Queue::producer_token_t tok;
    };

    struct Receiver : Endpoint {
        explicit Receiver(MoodycamelBlocking &p) : q(p.q_), tok(p.q_) {}
        Op try_recv(int64_t &v)
        {
            return q.try_dequeue(tok, v) ? Op::kOk : Op::kWouldBlock;
        }
        bool recv(int64_t &v)
        {
            q.wait_dequeue(tok, v);
            return true;
        }
        Queue &q;
        typename Queue::consumer_token_t tok;
    };

private:
    Queue q_;
};

// ---- moodycamel ReaderWriterQueue (SPSC) -----------------------------------
// Bounded here: try_enqueue never allocates past the initial capacity.

class ReaderWriterQueue {
public:
    explicit ReaderWriterQueue(const Config &cfg) : q_(cfg.capacity) {}
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(ReaderWriterQueue &p) : q(p.q_) {}
        Op try_send(int64_t v)
        {
            return q.try_enqueue(v) ? Op::kOk : Op::kWouldBlock;
        }
        moodycamel::ReaderWriterQueue<int64_t> &q;
    };

    struct Receiver : Endpoint {
        explicit Receiver(ReaderWriterQueue &p) : q(p.q_) {}
        Op try_recv(int64_t &v)
        {
            return q.try_dequeue(v) ? Op::kOk : Op::kWouldBlock;
        }
        moodycamel::ReaderWriterQueue<int64_t> &q;
    };

private:
    moodycamel::ReaderWriterQueue<int64_t> q_;
};

// ---- Boost.Lockfree queue (MPMC, bounded by its node pool) ------------------
// bounded_push() never allocates: the queue holds at most `capacity` nodes.

class BoostQueue {
public:
    explicit BoostQueue(const Config &cfg) : q_(cfg.capacity) {}
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(BoostQueue &p) : q(p.q_) {}
        Op try_send(int64_t v)
        {
            return q.bounded_push(v) ? Op::kOk : Op::kWouldBlock;
        }
        boost::lockfree::queue<int64_t> &q;
    };

    struct Receiver : Endpoint {
        explicit Receiver(BoostQueue &p) : q(p.q_) {}
        Op try_recv(int64_t &v) { return q.pop(v) ? Op::kOk : Op::kWouldBlock; }
        boost::lockfree::queue<int64_t> &q;
    };

private:
    boost::lockfree::queue<int64_t> q_;
};

// ---- Boost.Lockfree spsc_queue (SPSC ring, bulk push/pop) -------------------

class BoostSpsc {
public:
    explicit BoostSpsc(const Config &cfg) : q_(cfg.capacity) {}
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(BoostSpsc &p) : q(p.q_) {}
        Op try_send(int64_t v) { return q.push(v) ? Op::kOk : Op::kWouldBlock; }
        long try_send_batch(const int64_t *v, size_t n)
        {
            return long(q.push(v, n));
        }
        boost::lockfree::spsc_queue<int64_t> &q;
    };

    struct Receiver : Endpoint {
        explicit Receiver(BoostSpsc &p) : q(p.q_) {}
        Op try_recv(int64_t &v) { return q.pop(v) ? Op::kOk : Op::kWouldBlock; }
        long try_recv_batch(int64_t *out, size_t n)
        {
            return long(q.pop(out, n));
        }
        boost::lockfree::spsc_queue<int64_t> &q;
    };

private:
    boost::lockfree::spsc_queue<int64_t> q_;
};

// ---- Concurrency Kit ck_ring -------------------------------------------------
// A ring of pointer-sized slots; the 64-bit payload travels as the pointer
// value (through ck_ring_shim.c: ck_ring.h does not compile as C++).
// `capacity` must be a power of two and the ring holds capacity - 1.
// CK 0.7.1 has no bulk enqueue/dequeue, so ck_ring is not in the batch case.
// Mpmc = false: ck_ring_*_spsc (1P/1C, ping-pong); true: ck_ring_enqueue_mpmc
// and ck_ring_dequeue_mpmc (2P/2C).

template <bool Mpmc>
class CkRing {
public:
    explicit CkRing(const Config &cfg)
        : ring_(lchb_ck_ring_new(unsigned(cfg.capacity)))
    {
        if (ring_ == nullptr)
            init_error = "ck_ring: capacity must be a power of two >= 2";
    }
    ~CkRing() { lchb_ck_ring_free(ring_); }
    CkRing(const CkRing &) = delete;
    CkRing &operator=(const CkRing &) = delete;
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(CkRing &p) : r(p.ring_) {}
        Op try_send(int64_t v)
        {
            bool ok = Mpmc ? lchb_ck_ring_enqueue_mpmc(r, v)
                           : lchb_ck_ring_enqueue_spsc(r, v);
            return ok ? Op::kOk : Op::kWouldBlock;
        }
        lchb_ck_ring *r;
    };

    struct Receiver : Endpoint {
        explicit Receiver(CkRing &p) : r(p.ring_) {}
        Op try_recv(int64_t &v)
        {
            bool ok = Mpmc ? lchb_ck_ring_dequeue_mpmc(r, &v)
                           : lchb_ck_ring_dequeue_spsc(r, &v);
            return ok ? Op::kOk : Op::kWouldBlock;
        }
        lchb_ck_ring *r;
    };

private:
    lchb_ck_ring *ring_;
};

// ---- liburcu wfcqueue (wait-free enqueue, non-blocking dequeue) -------------
// An intrusive linked queue: each message is a node. Nodes come from a
// per-Sender pool of Config::max_in_flight nodes used round-robin, so nothing
// is allocated while measuring; a case sets max_in_flight to at least the
// number of messages one sender sends per iteration, so a node is reused only
// after the iteration that queued it has been fully received.
// Dequeue is __cds_wfcq_dequeue_nonblocking, which returns CDS_WFCQ_WOULDBLOCK
// instead of sleeping when it meets an enqueue in progress (the _blocking
// variant may sleep 10 ms there). Dequeuers must exclude each other: with one
// consumer (MultiConsumer = false) that holds by construction; with several the
// call is wrapped in cds_wfcq_dequeue_lock/unlock (the head's mutex). The bulk
// forms: a Sender links a batch into a private queue and splices it in with
// one __cds_wfcq_splice_blocking (destination side needs no lock; the private
// source has no concurrent enqueuer, so it never waits); a Receiver splices the
// whole shared queue into a private one with __cds_wfcq_splice_nonblocking and
// then hands it out.

template <bool MultiConsumer>
class Wfcq {
public:
    explicit Wfcq(const Config &cfg) : pool_size_(cfg.max_in_flight)
    {
        cds_wfcq_init(&head_, &tail_);
    }
    ~Wfcq() { cds_wfcq_destroy(&head_, &tail_); }
    Wfcq(const Wfcq &) = delete;
    Wfcq &operator=(const Wfcq &) = delete;
    std::string init_error;

    struct Node {
        cds_wfcq_node link;
        int64_t v;
    };

    static Node *node_of(cds_wfcq_node *n)
    {
        static_assert(offsetof(Node, link) == 0, "link must come first");
        return reinterpret_cast<Node *>(n);
    }

    struct Sender : Endpoint {
        explicit Sender(Wfcq &p) : q(p), pool(std::max<size_t>(p.pool_size_, 2))
        {
        }
        Node *next_node(int64_t v)
        {
            Node *n = &pool[next];
            next = next + 1 == pool.size() ? 0 : next + 1;
            cds_wfcq_node_init(&n->link);
            n->v = v;
            return n;
        }
        Op try_send(int64_t v)
        {
            cds_wfcq_enqueue(cds_wfcq_head_cast(&q.head_), &q.tail_,
                             &next_node(v)->link);
            return Op::kOk;
        }
        long send_batch(const int64_t *v, size_t n)
        {
            __cds_wfcq_head lh;
            cds_wfcq_tail lt;
            __cds_wfcq_init(&lh, &lt);
            for (size_t i = 0; i < n; ++i)
                cds_wfcq_enqueue(__cds_wfcq_head_cast(&lh), &lt,
                                 &next_node(v[i])->link);
            __cds_wfcq_splice_blocking(cds_wfcq_head_cast(&q.head_), &q.tail_,
                                       __cds_wfcq_head_cast(&lh), &lt);
            return long(n);
        }
        Wfcq &q;
        std::vector<Node> pool;
        size_t next = 0;
    };

    struct Receiver : Endpoint {
        explicit Receiver(Wfcq &p) : q(p) { __cds_wfcq_init(&lh, &lt); }
        Op try_recv(int64_t &v)
        {
            if (MultiConsumer)
                cds_wfcq_dequeue_lock(&q.head_, &q.tail_);
            cds_wfcq_node *n = __cds_wfcq_dequeue_nonblocking(
                cds_wfcq_head_cast(&q.head_), &q.tail_);
            if (MultiConsumer)
                cds_wfcq_dequeue_unlock(&q.head_, &q.tail_);
            if (n == nullptr || n == CDS_WFCQ_WOULDBLOCK)
                return Op::kWouldBlock;
            v = node_of(n)->v;
            return Op::kOk;
        }
        long try_recv_batch(int64_t *out, size_t n)
        {
            if (cds_wfcq_empty(__cds_wfcq_head_cast(&lh), &lt)) {
                if (MultiConsumer)
                    cds_wfcq_dequeue_lock(&q.head_, &q.tail_);
                __cds_wfcq_splice_nonblocking(__cds_wfcq_head_cast(&lh), &lt,
                                              cds_wfcq_head_cast(&q.head_),
                                              &q.tail_);
                if (MultiConsumer)
                    cds_wfcq_dequeue_unlock(&q.head_, &q.tail_);
            }
            size_t got = 0;
            while (got < n) {
                cds_wfcq_node *node = __cds_wfcq_dequeue_nonblocking(
                    __cds_wfcq_head_cast(&lh), &lt);
                if (node == nullptr || node == CDS_WFCQ_WOULDBLOCK)
                    break;
                out[got++] = node_of(node)->v;
            }
            return long(got);
        }
        Wfcq &q;
        __cds_wfcq_head lh; // private queue filled by splice
        cds_wfcq_tail lt;
    };

private:
    size_t pool_size_;
    alignas(64) cds_wfcq_head head_;
    alignas(64) cds_wfcq_tail tail_;
};

// ---- atomic_queue (Maxim Egorushkin; bounded ring of atomic slots) ----------
// AtomicQueue<int64_t, 1024, NIL>: a fixed-size ring whose slots are the
// 64-bit elements themselves, with NIL marking an empty slot. The default NIL
// is 0, which the benchmark sends (producer 0's first message, the first
// ping), so these adapters use INT64_MIN: messages are >= 0 and the end marker
// is -1. (AtomicQueue2, the variant for non-atomic elements, keeps a state
// byte beside each element instead of a NIL; for a 64-bit integer that only
// adds the byte, so it is not measured.) The size is a template argument:
// Config::capacity must be kAtomicQueueSlots. Index shuffling to spread
// neighbouring slots over cache lines (MINIMIZE_CONTENTION) and pausing while
// spinning (MAXIMIZE_THROUGHPUT) are on, as by default; no total order.
//
// AtomicQ<false>: MPMC through try_push/try_pop, which claim a slot with a
// CAS loop and fail when the ring is full or empty, so a consumer spins here
// with Backoff. AtomicQ<true>: the SPSC mode (the SPSC template parameter):
// plain loads and stores of head and tail, one producer and one consumer
// only (1P/1C and ping-pong). AtomicQOptimist: the same MPMC ring through
// push/pop, the "optimist" forms: one fetch_add claims a slot and the thread
// then spins inside the queue (pause, never yield nor park) until that slot
// is free or filled, so send and recv wait by spinning.
// The MPMC ring is not in the 2P/2C case: a slot holds no lap number, so when
// a thread is preempted inside push or pop, elements a ring apart can pass
// each other and one producer's messages arrive out of order (the case's
// order check fails; see register_all in bench_channel.cpp).

constexpr unsigned kAtomicQueueSlots = 1024;
constexpr int64_t kAtomicQueueNil = std::numeric_limits<int64_t>::min();

template <bool Spsc>
class AtomicQ {
protected:
    using Queue = atomic_queue::AtomicQueue<int64_t, kAtomicQueueSlots,
                                            kAtomicQueueNil,
                                            /*MINIMIZE_CONTENTION*/ true,
                                            /*MAXIMIZE_THROUGHPUT*/ true,
                                            /*TOTAL_ORDER*/ false, Spsc>;

public:
    explicit AtomicQ(const Config &cfg)
    {
        if (cfg.capacity != kAtomicQueueSlots)
            init_error = "atomic_queue: the capacity is a template argument (" +
                         std::to_string(kAtomicQueueSlots) + ")";
    }
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(AtomicQ &p) : q(p.q_) {}
        Op try_send(int64_t v)
        {
            if (v == kAtomicQueueNil)
                return fail("atomic_queue: cannot send its NIL value");
            return q.try_push(v) ? Op::kOk : Op::kWouldBlock;
        }
        Queue &q;
    };

    struct Receiver : Endpoint {
        explicit Receiver(AtomicQ &p) : q(p.q_) {}
        Op try_recv(int64_t &v)
        {
            return q.try_pop(v) ? Op::kOk : Op::kWouldBlock;
        }
        Queue &q;
    };

protected:
    Queue q_;
};

class AtomicQOptimist : public AtomicQ<false> {
public:
    using AtomicQ<false>::AtomicQ;

    struct Sender : AtomicQ<false>::Sender {
        explicit Sender(AtomicQOptimist &p) : AtomicQ<false>::Sender(p) {}
        bool send(int64_t v)
        {
            if (v == kAtomicQueueNil)
                return fail("atomic_queue: cannot send its NIL value"), false;
            q.push(v);
            return true;
        }
    };

    struct Receiver : AtomicQ<false>::Receiver {
        explicit Receiver(AtomicQOptimist &p) : AtomicQ<false>::Receiver(p) {}
        bool recv(int64_t &v)
        {
            v = q.pop();
            return true;
        }
    };
};

// ---- xenium vyukov_bounded_queue (MPMC, bounded) -----------------------------
// Dmitry Vyukov's array queue: a sequence number per cell, CAS on the enqueue
// or dequeue position. try_push/try_pop are the strong forms (xenium's
// default): they fail only when the queue is full or empty, and a try_pop that
// meets a push in progress on its cell spins until it completes. No waiting
// forms: a consumer spins with Backoff. `capacity` must be a power of two.

inline bool is_pow2(size_t n) { return n >= 2 && (n & (n - 1)) == 0; }

class XeniumVyukov {
    using Queue = xenium::vyukov_bounded_queue<int64_t>;

public:
    explicit XeniumVyukov(const Config &cfg)
        : q_(is_pow2(cfg.capacity) ? cfg.capacity : 2)
    {
        if (!is_pow2(cfg.capacity))
            init_error = "vyukov_bounded_queue: capacity must be a power of "
                         "two >= 2";
    }
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(XeniumVyukov &p) : q(p.q_) {}
        Op try_send(int64_t v)
        {
            return q.try_push(v) ? Op::kOk : Op::kWouldBlock;
        }
        Queue &q;
    };

    struct Receiver : Endpoint {
        explicit Receiver(XeniumVyukov &p) : q(p.q_) {}
        Op try_recv(int64_t &v)
        {
            return q.try_pop(v) ? Op::kOk : Op::kWouldBlock;
        }
        Queue &q;
    };

private:
    Queue q_;
};

// ---- xenium ramalhete_queue (MPMC, unbounded) --------------------------------
// Ramalhete and Correia's FAAArrayQueue: a linked list of 512-entry nodes;
// push and pop each take an index with one fetch_add and a new node is
// allocated when the last one fills up (so it allocates while measuring, one
// node per 512 messages). Nodes are freed through xenium's epoch-based
// reclamation (reclamation::epoch_based, Fraser's EBR). No waiting forms: a
// consumer spins with Backoff; try_pop itself retries an entry whose push is
// in progress up to 1000 times (pop_retries) before it skips it.
// The queue holds one machine word per entry, a pointer (or a trivially
// copyable type smaller than one): zero means empty and the top bit is its
// mark. A message v travels as the word v + 2: the benchmark's messages are
// >= 0 and the end marker is -1, so the word is never 0 and stays below 2^63;
// anything below -1 is refused.

class XeniumRamalhete {
    struct Word; // never defined: the queue only moves the pointer value
    using Queue = xenium::ramalhete_queue<
        Word *,
        xenium::policy::reclaimer<xenium::reclamation::epoch_based<>>>;
    static constexpr uint64_t kBias = 2;

public:
    explicit XeniumRamalhete(const Config &) {}
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(XeniumRamalhete &p) : q(p.q_) {}
        Op try_send(int64_t v)
        {
            if (v < -1)
                return fail("ramalhete_queue: messages below -1 do not fit");
            q.push(reinterpret_cast<Word *>(uintptr_t(uint64_t(v) + kBias)));
            return Op::kOk;
        }
        Queue &q;
    };

    struct Receiver : Endpoint {
        explicit Receiver(XeniumRamalhete &p) : q(p.q_) {}
        Op try_recv(int64_t &v)
        {
            Word *w;
            if (!q.try_pop(w))
                return Op::kWouldBlock;
            v = int64_t(uint64_t(reinterpret_cast<uintptr_t>(w)) - kBias);
            return Op::kOk;
        }
        Queue &q;
    };

private:
    Queue q_;
};

// ---- oneTBB concurrent_bounded_queue (MPMC, bounded, blocking) ---------------
// set_capacity(capacity). push waits while the queue is full and pop while it
// is empty, in TBB's concurrent monitor (the waiter sleeps in the kernel);
// try_push/try_pop never wait. Both ends take a ticket from a shared counter
// and use one of several micro-queues, each a list of pages: TBB allocates
// and frees pages as messages pass through, bounded or not.

class TbbBounded {
public:
    explicit TbbBounded(const Config &cfg)
    {
        if (cfg.capacity == 0)
            init_error = "concurrent_bounded_queue: capacity must be >= 1";
        else
            q_.set_capacity(std::ptrdiff_t(cfg.capacity));
    }
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(TbbBounded &p) : q(p.q_) {}
        Op try_send(int64_t v)
        {
            return q.try_push(v) ? Op::kOk : Op::kWouldBlock;
        }
        bool send(int64_t v)
        {
            q.push(v);
            return true;
        }
        tbb::concurrent_bounded_queue<int64_t> &q;
    };

    struct Receiver : Endpoint {
        explicit Receiver(TbbBounded &p) : q(p.q_) {}
        Op try_recv(int64_t &v)
        {
            return q.try_pop(v) ? Op::kOk : Op::kWouldBlock;
        }
        bool recv(int64_t &v)
        {
            q.pop(v);
            return true;
        }
        tbb::concurrent_bounded_queue<int64_t> &q;
    };

private:
    tbb::concurrent_bounded_queue<int64_t> q_;
};

// ---- oneTBB concurrent_queue (MPMC, unbounded) -------------------------------
// The same ticketed micro-queues without a capacity or waiting: push never
// fails (it allocates pages as needed) and try_pop is the only way out, so a
// consumer spins with Backoff.

class TbbQueue {
public:
    explicit TbbQueue(const Config &) {}
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(TbbQueue &p) : q(p.q_) {}
        Op try_send(int64_t v)
        {
            q.push(v);
            return Op::kOk;
        }
        tbb::concurrent_queue<int64_t> &q;
    };

    struct Receiver : Endpoint {
        explicit Receiver(TbbQueue &p) : q(p.q_) {}
        Op try_recv(int64_t &v)
        {
            return q.try_pop(v) ? Op::kOk : Op::kWouldBlock;
        }
        tbb::concurrent_queue<int64_t> &q;
    };

private:
    tbb::concurrent_queue<int64_t> q_;
};

// ---- std::mutex + std::condition_variable around a bounded std::deque -------
// Blocking send and receive; the batch forms move as many as fit under one
// lock acquisition.

class MutexDeque {
public:
    explicit MutexDeque(const Config &cfg) : cap_(std::max<size_t>(cfg.capacity, 1)) {}
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(MutexDeque &p) : q(p) {}
        Op try_send(int64_t v)
        {
            {
                std::lock_guard<std::mutex> lk(q.mu_);
                if (q.items_.size() >= q.cap_)
                    return Op::kWouldBlock;
                q.items_.push_back(v);
            }
            q.not_empty_.notify_one();
            return Op::kOk;
        }
        bool send(int64_t v)
        {
            {
                std::unique_lock<std::mutex> lk(q.mu_);
                q.not_full_.wait(lk, [&] { return q.items_.size() < q.cap_; });
                q.items_.push_back(v);
            }
            q.not_empty_.notify_one();
            return true;
        }
        long send_batch(const int64_t *v, size_t n)
        {
            size_t k;
            {
                std::unique_lock<std::mutex> lk(q.mu_);
                q.not_full_.wait(lk, [&] { return q.items_.size() < q.cap_; });
                k = std::min(n, q.cap_ - q.items_.size());
                q.items_.insert(q.items_.end(), v, v + k);
            }
            q.not_empty_.notify_all();
            return long(k);
        }
        MutexDeque &q;
    };

    struct Receiver : Endpoint {
        explicit Receiver(MutexDeque &p) : q(p) {}
        Op try_recv(int64_t &v)
        {
            {
                std::lock_guard<std::mutex> lk(q.mu_);
                if (q.items_.empty())
                    return Op::kWouldBlock;
                v = q.items_.front();
                q.items_.pop_front();
            }
            q.not_full_.notify_one();
            return Op::kOk;
        }
        bool recv(int64_t &v)
        {
            {
                std::unique_lock<std::mutex> lk(q.mu_);
                q.not_empty_.wait(lk, [&] { return !q.items_.empty(); });
                v = q.items_.front();
                q.items_.pop_front();
            }
            q.not_full_.notify_one();
            return true;
        }
        long recv_batch(int64_t *out, size_t n)
        {
            size_t k;
            {
                std::unique_lock<std::mutex> lk(q.mu_);
                q.not_empty_.wait(lk, [&] { return !q.items_.empty(); });
                k = std::min(n, q.items_.size());
                std::copy_n(q.items_.begin(), k, out);
                q.items_.erase(q.items_.begin(), q.items_.begin() + long(k));
            }
            q.not_full_.notify_all();
            return long(k);
        }
        MutexDeque &q;
    };

private:
    std::mutex mu_;
    std::condition_variable not_empty_;
    std::condition_variable not_full_;
    std::deque<int64_t> items_;
    size_t cap_;
};

// ---- a pipe -------------------------------------------------------------------
// One write(2) of 8 bytes per message (writes up to PIPE_BUF are atomic, so
// several writers and readers never split a message); batches are one write
// or read of up to 64 messages (512 bytes, still <= PIPE_BUF). The pipe is
// sized to capacity * 8 bytes (the kernel rounds up to whole pages). Reads
// block unless Config::nonblocking_recv (spinning ping-pong), where try_recv is
// a read on an O_NONBLOCK descriptor.

class Pipe {
public:
    explicit Pipe(const Config &cfg)
    {
        if (pipe2(fd_, O_CLOEXEC) != 0) {
            init_error = std::string("pipe2: ") + std::strerror(errno);
            fd_[0] = fd_[1] = -1;
            return;
        }
        if (cfg.capacity > 0)
            (void)fcntl(fd_[1], F_SETPIPE_SZ, int(cfg.capacity * 8));
        if (cfg.nonblocking_recv)
            (void)fcntl(fd_[0], F_SETFL, fcntl(fd_[0], F_GETFL) | O_NONBLOCK);
    }
    ~Pipe()
    {
        for (int fd : fd_)
            if (fd >= 0)
                close(fd);
    }
    Pipe(const Pipe &) = delete;
    Pipe &operator=(const Pipe &) = delete;
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(Pipe &p) : fd(p.fd_[1]) {}
        bool send(int64_t v) { return write_all(&v, 1) == 1; }
        long send_batch(const int64_t *v, size_t n)
        {
            return write_all(v, std::min<size_t>(n, 64));
        }
        long write_all(const int64_t *v, size_t n)
        {
            ssize_t w;
            do
                w = write(fd, v, n * 8);
            while (w < 0 && errno == EINTR);
            if (w != ssize_t(n * 8))
                return fail(std::string("pipe write: ") +
                            (w < 0 ? std::strerror(errno) : "short write")),
                       -1;
            return long(n);
        }
        int fd;
    };

    struct Receiver : Endpoint {
        explicit Receiver(Pipe &p) : fd(p.fd_[0]) {}
        // Returns messages read, 0 = none (O_NONBLOCK), -1 = error.
        long read_some(int64_t *out, size_t n)
        {
            ssize_t r;
            do
                r = read(fd, out, n * 8);
            while (r < 0 && errno == EINTR);
            if (r < 0 && errno == EAGAIN)
                return 0;
            if (r <= 0 || r % 8 != 0)
                return fail(std::string("pipe read: ") +
                            (r < 0 ? std::strerror(errno)
                                   : r == 0 ? "end of file" : "torn message")),
                       -1;
            return long(r / 8);
        }
        Op try_recv(int64_t &v)
        {
            long k = read_some(&v, 1);
            return k == 1 ? Op::kOk : k == 0 ? Op::kWouldBlock : Op::kError;
        }
        bool recv(int64_t &v) { return read_some(&v, 1) == 1; }
        long recv_batch(int64_t *out, size_t n)
        {
            return read_some(out, std::min<size_t>(n, 64));
        }
        int fd;
    };

private:
    int fd_[2];
};

// ---- raw futex mailbox (blocking ping-pong floor) ---------------------------
// The least a parked hand-off can cost: a one-slot mailbox whose 32-bit state
// word is the futex. send stores the value, sets the word and always calls
// FUTEX_WAKE (in this case the other side is parked); recv FUTEX_WAITs while
// the word is 0. One sender, one receiver, at most one message in flight: it
// exists for the ping-pong and reports an error if used otherwise.

class FutexMailbox {
public:
    explicit FutexMailbox(const Config &) {}
    std::string init_error;

    struct Sender : Endpoint {
        explicit Sender(FutexMailbox &p) : m(p) {}
        bool send(int64_t v)
        {
            if (m.full_.load(std::memory_order_relaxed) != 0)
                return fail("futex mailbox: already full"), false;
            m.slot_ = v;
            m.full_.store(1, std::memory_order_release); // pairs with recv's acquire
            futex_wake(&m.full_, 1);
            return true;
        }
        FutexMailbox &m;
    };

    struct Receiver : Endpoint {
        explicit Receiver(FutexMailbox &p) : m(p) {}
        bool recv(int64_t &v)
        {
            while (m.full_.load(std::memory_order_acquire) == 0)
                futex_wait(&m.full_, 0);
            v = m.slot_;
            m.full_.store(0, std::memory_order_relaxed);
            return true;
        }
        FutexMailbox &m;
    };

private:
    alignas(64) std::atomic<uint32_t> full_{0};
    int64_t slot_ = 0;
};

// ---- generic operations: native when the peer has them, else spin ------------

template <class T, class = void>
struct HasSend : std::false_type {};
template <class T>
struct HasSend<T, std::void_t<decltype(std::declval<T &>().send(int64_t{}))>>
    : std::true_type {};

template <class T, class = void>
struct HasRecv : std::false_type {};
template <class T>
struct HasRecv<T, std::void_t<decltype(std::declval<T &>().recv(
                      std::declval<int64_t &>()))>> : std::true_type {};

template <class T, class = void>
struct HasSendBatch : std::false_type {};
template <class T>
struct HasSendBatch<T, std::void_t<decltype(std::declval<T &>().send_batch(
                           (const int64_t *)nullptr, size_t{}))>>
    : std::true_type {};

template <class T, class = void>
struct HasTrySendBatch : std::false_type {};
template <class T>
struct HasTrySendBatch<T, std::void_t<decltype(std::declval<T &>().try_send_batch(
                              (const int64_t *)nullptr, size_t{}))>>
    : std::true_type {};

template <class T, class = void>
struct HasRecvBatch : std::false_type {};
template <class T>
struct HasRecvBatch<T, std::void_t<decltype(std::declval<T &>().recv_batch(
                           (int64_t *)nullptr, size_t{}))>> : std::true_type {};

template <class T, class = void>
struct HasTryRecvBatch : std::false_type {};
template <class T>
struct HasTryRecvBatch<T, std::void_t<decltype(std::declval<T &>().try_recv_batch(
                              (int64_t *)nullptr, size_t{}))>>
    : std::true_type {};

// Peers that have a bulk API of some form (the batch case runs only those).
template <class Peer>
constexpr bool kHasBulk =
    (HasSendBatch<typename Peer::Sender>::value ||
     HasTrySendBatch<typename Peer::Sender>::value) &&
    (HasRecvBatch<typename Peer::Receiver>::value ||
     HasTryRecvBatch<typename Peer::Receiver>::value);

template <class S>
bool send_one(S &s, int64_t v)
{
    if constexpr (HasSend<S>::value) {
        return s.send(v);
    } else {
        Backoff b;
        for (;;) {
            Op r = s.try_send(v);
            if (r == Op::kOk)
                return true;
            if (r == Op::kError)
                return false;
            b.wait();
        }
    }
}

template <class R>
bool recv_one(R &r, int64_t &v)
{
    if constexpr (HasRecv<R>::value) {
        return r.recv(v);
    } else {
        Backoff b;
        for (;;) {
            Op o = r.try_recv(v);
            if (o == Op::kOk)
                return true;
            if (o == Op::kError)
                return false;
            b.wait();
        }
    }
}

// Spin on try_recv only (the spinning ping-pong uses this for every peer).
template <class R>
bool spin_recv(R &r, int64_t &v)
{
    Backoff b;
    for (;;) {
        Op o = r.try_recv(v);
        if (o == Op::kOk)
            return true;
        if (o == Op::kError)
            return false;
        b.wait();
    }
}

// Send at least one of v[0..n): the count sent, or -1.
template <class S>
long send_some(S &s, const int64_t *v, size_t n)
{
    if constexpr (HasSendBatch<S>::value) {
        return s.send_batch(v, n);
    } else {
        Backoff b;
        for (;;) {
            long k = s.try_send_batch(v, n);
            if (k != 0)
                return k;
            b.wait();
        }
    }
}

// Receive at least one message into out[0..n): the count, or -1.
template <class R>
long recv_some(R &r, int64_t *out, size_t n)
{
    if constexpr (HasRecvBatch<R>::value) {
        return r.recv_batch(out, n);
    } else {
        Backoff b;
        for (;;) {
            long k = r.try_recv_batch(out, n);
            if (k != 0)
                return k;
            b.wait();
        }
    }
}

} // namespace lchb
