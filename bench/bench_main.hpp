// bench_main.hpp: the command-line defaults every lch_bench* binary shares.
//
// Unless the command line sets them: 5 repetitions, aggregates only (the
// report scripts read the medians), and repetitions interleaved in random
// order, so that slow drifts of this shared VM (the host moving vCPUs
// between cores changes core-to-core latency several-fold) spread over every
// entry instead of landing on whichever ran at the time.
#pragma once

#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

namespace lchb_main {

inline bool has_flag(int argc, char **argv, const char *prefix)
{
    for (int i = 1; i < argc; ++i)
        if (std::strncmp(argv[i], prefix, std::strlen(prefix)) == 0)
            return true;
    return false;
}

// benchmark::Initialize with the defaults above; false (after printing) if
// the command line has arguments Google Benchmark does not know.
inline bool initialize(int argc, char **argv)
{
    static char reps[] = "--benchmark_repetitions=5";
    static char aggs[] = "--benchmark_report_aggregates_only=true";
    static char shuffle[] = "--benchmark_enable_random_interleaving=true";
    static std::vector<char *> args;
    args.assign(argv, argv + argc);
    if (!has_flag(argc, argv, "--benchmark_repetitions")) {
        args.insert(args.begin() + 1, aggs);
        args.insert(args.begin() + 1, reps);
    }
    if (!has_flag(argc, argv, "--benchmark_enable_random_interleaving"))
        args.insert(args.begin() + 1, shuffle);
    int n = int(args.size());
    args.push_back(nullptr);
    benchmark::Initialize(&n, args.data());
    return !benchmark::ReportUnrecognizedArguments(n, args.data());
}

} // namespace lchb_main
