// harness.hpp: the thread machinery shared by every benchmark case.
//
// It holds what is not about any one queue: the pause instruction and the
// spin-then-yield Backoff every busy-waiting peer uses; raw futex calls (for
// parking the harness's own threads and for the raw-futex ping-pong peer);
// CPU pinning onto "slot 0" and "slot 1", the first two CPUs this process may
// run on; a Team of persistent, pinned threads that run one body per role per
// benchmark iteration (role 0 on the calling thread, so no third thread
// competes for the two cores while a case runs); an ErrorSink where worker
// threads record the first thing that went wrong, for the benchmark thread to
// report with SkipWithError; and a Watchdog that aborts the process if an
// iteration hangs (a peer that lost a message would otherwise block a CI job
// forever).
#pragma once

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace lchb {

inline void cpu_relax()
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

inline int64_t now_ns()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Busy-wait step for peers that only offer try-operations: a pause
// instruction per step. After kSpinNs of spinning (the same budget libchan
// spins before it parks, LCH_DEFAULT_SPIN_NS) it also yields the CPU every
// 64 steps, because in the 2P/2C case two threads share each core and a
// spinner must let the thread it waits for run. One object per wait.
class Backoff {
public:
    void wait()
    {
        cpu_relax();
        if ((++n_ & 63) != 0)
            return;
        int64_t t = now_ns();
        if (start_ == 0)
            start_ = t;
        else if (t - start_ >= kSpinNs)
            sched_yield();
    }

private:
    static constexpr int64_t kSpinNs = 20000;
    unsigned n_ = 0;
    int64_t start_ = 0;
};

// std::atomic<uint32_t> is a plain 32-bit word on Linux; the futex calls use
// its address (C++17 has no atomic wait).
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t),
              "futex words must be 32 bits");
static_assert(std::atomic<uint32_t>::is_always_lock_free,
              "futex words must be lock-free");

// FUTEX_WAIT_PRIVATE: sleep while *w == expected (returns at once otherwise;
// spurious wake-ups are possible, callers loop).
inline void futex_wait(std::atomic<uint32_t> *w, uint32_t expected)
{
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(w), FUTEX_WAIT_PRIVATE,
            expected, nullptr, nullptr, 0);
}

inline void futex_wake(std::atomic<uint32_t> *w, int n)
{
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(w), FUTEX_WAKE_PRIVATE, n,
            nullptr, nullptr, 0);
}

// The two CPUs the benchmarks use, chosen once from the process's affinity
// mask: the first two allowed CPUs. With fewer than two nothing is pinned.
class Cpus {
public:
    static const Cpus &get()
    {
        static const Cpus cpus;
        return cpus;
    }
    bool pinning() const { return n_ >= 2; }
    int cpu(int slot) const { return id_[slot & 1]; }
    std::string describe() const
    {
        if (!pinning())
            return "not pinned (fewer than 2 CPUs allowed)";
        return "slot0=cpu" + std::to_string(id_[0]) + " slot1=cpu" +
               std::to_string(id_[1]);
    }

    // Pin the calling thread to slot 0 or 1; false (and no change) when
    // pinning is off or the call fails.
    bool pin_self(int slot) const
    {
        if (!pinning())
            return false;
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu(slot), &set);
        return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
    }

private:
    Cpus()
    {
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof set, &set) != 0)
            return;
        for (int c = 0; c < CPU_SETSIZE && n_ < 2; ++c)
            if (CPU_ISSET(c, &set))
                id_[n_++] = c;
    }
    int n_ = 0;
    int id_[2] = {0, 0};
};

// First error wins; any thread may record, the benchmark thread takes it
// after an iteration.
class ErrorSink {
public:
    void record(std::string msg)
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (msg_.empty())
            msg_ = std::move(msg);
        failed_.store(true, std::memory_order_release);
    }
    bool failed() const { return failed_.load(std::memory_order_acquire); }
    std::string message()
    {
        std::lock_guard<std::mutex> lk(mu_);
        return msg_;
    }

private:
    std::mutex mu_;
    std::string msg_;
    std::atomic<bool> failed_{false};
};

// Aborts the process when one Team iteration runs longer than the limit
// (LCH_BENCH_WATCHDOG_S seconds, default 120). A sleeping thread that looks
// once a second; it costs nothing measurable.
class Watchdog {
public:
    static Watchdog &get()
    {
        static Watchdog *w = new Watchdog(); // never destroyed: detached thread
        return *w;
    }
    void arm(const std::string &what)
    {
        {
            std::lock_guard<std::mutex> lk(mu_);
            what_ = what;
        }
        start_ns_.store(now_ns(), std::memory_order_release);
    }
    void disarm() { start_ns_.store(0, std::memory_order_release); }

private:
    Watchdog()
    {
        const char *s = std::getenv("LCH_BENCH_WATCHDOG_S");
        if (s != nullptr && std::atoi(s) > 0)
            limit_s_ = std::atoi(s);
        std::thread([this] { loop(); }).detach();
    }
    void loop()
    {
        for (;;) {
            std::this_thread::sleep_for(std::chrono::seconds(1));
            int64_t t0 = start_ns_.load(std::memory_order_acquire);
            if (t0 != 0 && now_ns() - t0 > int64_t(limit_s_) * 1000000000) {
                std::lock_guard<std::mutex> lk(mu_);
                std::fprintf(stderr,
                             "lch_bench: %s: one iteration has run for more "
                             "than %d s; a message was lost or a thread is "
                             "stuck. Aborting.\n",
                             what_.c_str(), limit_s_);
                std::abort();
            }
        }
    }
    std::mutex mu_;
    std::string what_;
    std::atomic<int64_t> start_ns_{0};
    int limit_s_ = 120;
};

// Persistent threads for one benchmark run. Every run() executes body(r) once
// for each role r: role 0 on the calling thread (pinned to role_slot[0] for
// the Team's lifetime, its old affinity restored afterwards), roles 1..n-1 on
// worker threads pinned to role_slot[r]. Idle workers sleep on a futex; each
// iteration wakes them, waits at a start line until every role is there, and
// times from the start signal to the moment the last role finishes. So the
// figure excludes the harness's own wake-ups (tens of microseconds on a VM),
// which would otherwise dilute every peer's result by a fixed amount.
class Team {
public:
    Team(std::string name, std::vector<int> role_slot,
         std::function<void(int)> body)
        : name_(std::move(name)), slots_(std::move(role_slot)),
          body_(std::move(body)), nworkers_(uint32_t(slots_.size() - 1)),
          finish_ns_(slots_.size())
    {
        const Cpus &cpus = Cpus::get();
        if (cpus.pinning()) {
            CPU_ZERO(&saved_);
            saved_ok_ = pthread_getaffinity_np(pthread_self(), sizeof saved_,
                                               &saved_) == 0;
            cpus.pin_self(slots_[0]);
        }
        for (size_t r = 1; r < slots_.size(); ++r)
            workers_.emplace_back([this, r] { worker(int(r)); });
    }

    ~Team()
    {
        stop_.store(true, std::memory_order_relaxed);
        gen_.fetch_add(1, std::memory_order_release);
        futex_wake(&gen_, INT_MAX);
        for (auto &t : workers_)
            t.join();
        if (saved_ok_)
            pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_);
    }

    Team(const Team &) = delete;
    Team &operator=(const Team &) = delete;

    // One iteration: all roles run to completion. Returns the nanoseconds
    // from the start signal to the last role's finish.
    int64_t run()
    {
        Watchdog::get().arm(name_);
        // Reset before publishing the generation; workers touch ready_ and
        // done_ only after they acquire the new generation (pairs with the
        // release below).
        ready_.store(0, std::memory_order_relaxed);
        done_.store(0, std::memory_order_relaxed);
        uint32_t g = gen_.fetch_add(1, std::memory_order_release) + 1;
        futex_wake(&gen_, INT_MAX);
        Backoff b;
        while (ready_.load(std::memory_order_acquire) != nworkers_)
            b.wait();
        const int64_t t0 = now_ns();
        go_.store(g, std::memory_order_release); // pairs with the workers' acquire
        body_(0);
        finish_ns_[0] = now_ns();
        uint32_t d;
        while ((d = done_.load(std::memory_order_acquire)) != nworkers_)
            futex_wait(&done_, d);
        Watchdog::get().disarm();
        int64_t t1 = finish_ns_[0];
        for (int64_t t : finish_ns_)
            t1 = std::max(t1, t);
        return t1 - t0;
    }

private:
    void worker(int role)
    {
        Cpus::get().pin_self(slots_[role]);
        uint32_t seen = 0;
        for (;;) {
            uint32_t g;
            while ((g = gen_.load(std::memory_order_acquire)) == seen)
                futex_wait(&gen_, seen);
            seen = g;
            if (stop_.load(std::memory_order_relaxed))
                return;
            ready_.fetch_add(1, std::memory_order_release);
            Backoff b;
            while (go_.load(std::memory_order_acquire) != g)
                b.wait();
            body_(role);
            finish_ns_[size_t(role)] = now_ns();
            // acq_rel: the body's writes (and finish_ns_) happen-before
            // run() sees the count.
            if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == nworkers_)
                futex_wake(&done_, 1);
        }
    }

    std::string name_;
    std::vector<int> slots_;
    std::function<void(int)> body_;
    uint32_t nworkers_;
    std::vector<int64_t> finish_ns_; // per role, written by that role
    std::vector<std::thread> workers_;
    alignas(64) std::atomic<uint32_t> gen_{0};   // bumped per iteration
    alignas(64) std::atomic<uint32_t> ready_{0}; // workers at the start line
    alignas(64) std::atomic<uint32_t> go_{0};    // = gen_: start
    alignas(64) std::atomic<uint32_t> done_{0};  // workers finished
    std::atomic<bool> stop_{false};
    cpu_set_t saved_;
    bool saved_ok_ = false;
};

} // namespace lchb
