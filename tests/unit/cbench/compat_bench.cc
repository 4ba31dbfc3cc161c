// SPDX-License-Identifier: BSD-3-Clause
// compat_bench.c written against Google Benchmark: the same families, arguments,
// counters, labels and errors, so the two JSON documents can be compared field by field.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>

namespace
{

constexpr int64_t kSumValuesMax = 512;

void
BM_sum(benchmark::State &st)
{
	static uint64_t values[kSumValuesMax];
	const int64_t n = st.range(0);

	if (n < 1 || n > kSumValuesMax) {
		st.SkipWithError("argument out of range");
		return;
	}
	for (int64_t i = 0; i < n; i++) {
		values[i] = static_cast<uint64_t>(i) * 2654435761u;
	}
	for (auto _ : st) {
		uint64_t sum = 0;
		for (int64_t i = 0; i < n; i++) {
			sum += values[i];
		}
		benchmark::DoNotOptimize(sum);
	}
	st.SetItemsProcessed(st.iterations() * n);
	st.SetBytesProcessed(st.iterations() * n * static_cast<int64_t>(sizeof(values[0])));
	st.counters["elements"] = benchmark::Counter(static_cast<double>(n));
	st.SetLabel("sum");
}
BENCHMARK(BM_sum)->Range(8, 512);

void
BM_copy_paused(benchmark::State &st)
{
	char src[256];
	char dst[256];

	std::memset(src, 'x', sizeof(src));
	for (auto _ : st) {
		st.PauseTiming();
		src[0] = static_cast<char>(st.iterations());
		st.ResumeTiming();
		std::memcpy(dst, src, sizeof(dst));
		benchmark::DoNotOptimize(dst);
		benchmark::ClobberMemory();
	}
}
BENCHMARK(BM_copy_paused);

void
BM_fails(benchmark::State &st)
{
	st.SkipWithError("expected \"failure\"");
	for (auto _ : st) {
	}
}
BENCHMARK(BM_fails);

void
BM_args(benchmark::State &st)
{
	uint64_t acc = 0;

	for (auto _ : st) {
		acc += static_cast<uint64_t>(st.range(0) * st.range(1));
		benchmark::DoNotOptimize(acc);
	}
	st.counters["per_iter"] = benchmark::Counter(static_cast<double>(st.iterations()),
	                                             benchmark::Counter::kAvgIterations);
	st.counters["secs_per_op"] = benchmark::Counter(
	        1.0, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_args)->ArgNames({"keys", "vsize"})->RangeMultiplier(4)->Ranges({{1, 8}, {16, 64}});

void
BM_options(benchmark::State &st)
{
	uint64_t acc = 0;

	for (auto _ : st) {
		benchmark::DoNotOptimize(acc);
	}
}
BENCHMARK(BM_options)
        ->DenseRange(0, 6, 3)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime()
        ->MeasureProcessCPUTime()
        ->Iterations(1000);

void
BM_manual(benchmark::State &st)
{
	for (auto _ : st) {
		st.SetIterationTime(1e-6);
	}
}
BENCHMARK(BM_manual)->UseManualTime()->MinTime(0.01);

void
BM_threads(benchmark::State &st)
{
	uint64_t acc = 0;

	for (auto _ : st) {
		benchmark::DoNotOptimize(acc);
	}
	st.counters["per_thread"] = benchmark::Counter(1.0, benchmark::Counter::kAvgThreads);
	st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_threads)->Threads(2);

} // namespace

BENCHMARK_MAIN();
