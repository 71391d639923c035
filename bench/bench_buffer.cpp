// bench_buffer.cpp: what creating a shared buffer costs, and whether the
// large-block cache (libchan/buffer.h) saves the page faults it exists for.
//
// Four entries per size, one Google Benchmark family each, named
// "<entry>/<bytes>":
//
//   lch_new_copy          lch_buffer_new_copy + lch_buffer_unref, cache on
//                         (default limit; primed, so steady state is all hits)
//   lch_new_copy_nocache  the same with lch_buffer_cache_set_limit(0): every
//                         large block comes from and goes back to malloc
//   malloc_memcpy_free    the C library alone: malloc, memcpy, free
//   memcpy_existing       memcpy into a block allocated (and touched) once:
//                         the floor, what a perfect allocator would cost
//
// Sizes: 1 KiB (inline, never cached), 64 KiB (the smallest cached class),
// 1 MiB, 16 MiB, and 48 MiB (above glibc's 32 MiB ceiling for its dynamic
// mmap threshold, so glibc always maps and unmaps it).
//
// Counters: faults_per_op is the process's minor page faults (getrusage)
// during the timed loop divided by its iterations; hit_rate is the cache's
// hits per creation in the loop (lch_buffer_cache_stats). Times are wall
// clock per operation.
//
// glibc adapts: after the first free of a mapped block it raises its mmap
// threshold (up to 32 MiB) and serves later requests of that size from the
// heap, so a same-size loop in a warmed-up process may fault little even
// without the cache. Run once more with MALLOC_MMAP_THRESHOLD_=131072 in the
// environment (a fixed threshold, as an embedder may set, which disables the
// adaptation) to see the cost the cache removes in that case.
//
// Unless the command line says otherwise the binary runs 5 repetitions,
// reports aggregates only (read the medians) and interleaves repetitions in
// random order.
#include <benchmark/benchmark.h>

#include "bench_main.hpp"

#include <sys/resource.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "libchan/libchan.h"

namespace {

constexpr size_t kMaxSize = size_t(48) << 20;
const int64_t kSizes[] = {1 << 10, 64 << 10, 1 << 20, 16 << 20, 48 << 20};

// Source bytes, touched once so reading them never faults.
const unsigned char *source()
{
    static unsigned char *src = [] {
        auto *p = static_cast<unsigned char *>(std::malloc(kMaxSize));
        if (!p)
            std::abort();
        for (size_t i = 0; i < kMaxSize; i++)
            p[i] = static_cast<unsigned char>(i * 131);
        return p;
    }();
    return src;
}

long minor_faults()
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

// Measures faults and cache hits over the timed loop of one run.
class Probe {
public:
    Probe() : faults_(minor_faults()), stats_(cache_stats()) {}

    void report(benchmark::State &state) const
    {
        double iters = double(state.iterations());
        lch_buffer_cache_stats now = cache_stats();
        state.counters["faults_per_op"] =
            double(minor_faults() - faults_) / iters;
        state.counters["hit_rate"] = double(now.hits - stats_.hits) / iters;
        state.SetBytesProcessed(int64_t(state.iterations()) * state.range(0));
    }

private:
    static lch_buffer_cache_stats cache_stats()
    {
        lch_buffer_cache_stats s;
        lch_buffer_cache_stats_get(&s);
        return s;
    }

    long faults_;
    lch_buffer_cache_stats stats_;
};

void new_copy_loop(benchmark::State &state)
{
    const size_t len = size_t(state.range(0));
    const unsigned char *src = source();
    // Prime: one creation so the loop below measures the steady state.
    lch_buffer *b = nullptr;
    if (lch_buffer_new_copy(&b, src, len) != LCH_OK) {
        state.SkipWithError("lch_buffer_new_copy failed");
        return;
    }
    lch_buffer_unref(b);
    Probe probe;
    for (auto _ : state) {
        if (lch_buffer_new_copy(&b, src, len) != LCH_OK) {
            state.SkipWithError("lch_buffer_new_copy failed");
            break;
        }
        benchmark::DoNotOptimize(lch_buffer_data(b));
        lch_buffer_unref(b);
    }
    probe.report(state);
}

void BM_lch_new_copy(benchmark::State &state)
{
    lch_buffer_cache_set_limit(LCH_BUFFER_CACHE_DEFAULT_LIMIT);
    new_copy_loop(state);
    lch_buffer_cache_trim(); // leave nothing behind for other entries
}

void BM_lch_new_copy_nocache(benchmark::State &state)
{
    lch_buffer_cache_set_limit(0);
    new_copy_loop(state);
    lch_buffer_cache_set_limit(LCH_BUFFER_CACHE_DEFAULT_LIMIT);
}

void BM_malloc_memcpy_free(benchmark::State &state)
{
    const size_t len = size_t(state.range(0));
    const unsigned char *src = source();
    void *p = std::malloc(len); // prime, as above
    std::memcpy(p, src, len);
    benchmark::DoNotOptimize(p);
    std::free(p);
    Probe probe;
    for (auto _ : state) {
        p = std::malloc(len);
        if (!p) {
            state.SkipWithError("malloc failed");
            break;
        }
        std::memcpy(p, src, len);
        benchmark::DoNotOptimize(p);
        benchmark::ClobberMemory();
        std::free(p);
    }
    probe.report(state);
}

void BM_memcpy_existing(benchmark::State &state)
{
    const size_t len = size_t(state.range(0));
    const unsigned char *src = source();
    auto *dst = static_cast<unsigned char *>(std::malloc(len));
    if (!dst) {
        state.SkipWithError("malloc failed");
        return;
    }
    // Fault every page in once (non-zero: GCC turns malloc+memset(0) into
    // calloc, which leaves fresh mapped pages untouched).
    std::memset(dst, 1, len);
    Probe probe;
    for (auto _ : state) {
        std::memcpy(dst, src, len);
        benchmark::DoNotOptimize(dst);
        benchmark::ClobberMemory();
    }
    probe.report(state);
    std::free(dst);
}

void sizes(benchmark::internal::Benchmark *b)
{
    for (int64_t s : kSizes)
        b->Arg(s);
    b->Unit(benchmark::kNanosecond)->UseRealTime();
}

BENCHMARK(BM_lch_new_copy)->Apply(sizes)->Name("lch_new_copy");
BENCHMARK(BM_lch_new_copy_nocache)->Apply(sizes)->Name("lch_new_copy_nocache");
BENCHMARK(BM_malloc_memcpy_free)->Apply(sizes)->Name("malloc_memcpy_free");
BENCHMARK(BM_memcpy_existing)->Apply(sizes)->Name("memcpy_existing");

} // namespace

int main(int argc, char **argv)
{
    if (!lchb_main::initialize(argc, argv))
        return 1;
    const char *thr = std::getenv("MALLOC_MMAP_THRESHOLD_");
    benchmark::AddCustomContext("lch_bench_buffer.malloc_mmap_threshold",
                                thr ? thr : "glibc default (dynamic)");
    benchmark::AddCustomContext(
        "lch_bench_buffer.cache_limit",
        std::to_string(LCH_BUFFER_CACHE_DEFAULT_LIMIT));
    (void)source();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
