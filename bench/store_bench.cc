// Store throughput: durable single-object commits (alone and from concurrent callers, which
// share fsyncs through group commit) and in-memory reads. Set WARREN_BENCH_DIR to measure on
// a particular disk; the default is $TMPDIR or /tmp.
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "store/sqlite_store.h"

namespace warren {
namespace {

class BenchStore {
 public:
  BenchStore() {
    const char* base = std::getenv("WARREN_BENCH_DIR");
    if (base == nullptr) base = std::getenv("TMPDIR");
    std::string tmpl = absl::StrCat(base != nullptr ? base : "/tmp", "/warren_store_bench_XXXXXX");
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir_ = tmpl;
    auto store = SqliteStore::Open(dir_ + "/store.db");
    if (!store.ok()) std::abort();
    store_ = std::move(*store);
  }
  ~BenchStore() {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  SqliteStore& store() { return *store_; }

 private:
  std::string dir_;
  std::unique_ptr<SqliteStore> store_;
};

Mutation TaskPut(std::string id) {
  Mutation m;
  m.kind = Kind::kTask;
  m.id = std::move(id);
  m.data = std::string(256, 'x');
  return m;
}

BenchStore* commit_store = nullptr;
std::atomic<int64_t> next_id{0};

void BM_CommitSinglePut(benchmark::State& state) {
  if (state.thread_index() == 0) commit_store = new BenchStore();
  for (auto _ : state) {
    auto v = commit_store->store().Commit({TaskPut(absl::StrCat("t", next_id++))});
    if (!v.ok()) {
      state.SkipWithError(std::string(v.status().message()).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete commit_store;
    commit_store = nullptr;
  }
}
BENCHMARK(BM_CommitSinglePut)->Threads(1)->Threads(4)->Threads(16)->UseRealTime();

void BM_Get(benchmark::State& state) {
  BenchStore bs;
  const int n = static_cast<int>(state.range(0));
  std::vector<Mutation> batch;
  for (int i = 0; i < n; ++i) {
    batch.push_back(TaskPut(absl::StrCat("t", i)));
    if (batch.size() == 1000 || i == n - 1) {
      if (!bs.store().Commit(batch).ok()) std::abort();
      batch.clear();
    }
  }
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pick(0, n - 1);
  for (auto _ : state) {
    auto obj = bs.store().Get(Kind::kTask, absl::StrCat("t", pick(rng)));
    benchmark::DoNotOptimize(obj);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Get)->Arg(10000);

}  // namespace
}  // namespace warren

BENCHMARK_MAIN();
