// jemalloc's settings for the programs that link it (the warren binary, proxy_server_bench); it
// reads this symbol when it starts. Two arenas instead of four per core, and freed pages kept 2 s
// instead of 10 before they go back to the kernel: the manager's RSS at 1,000 services x 3 tasks
// was 62-64 MiB with the defaults and 59-60 MiB with these (issue 18's goal: under 64 MiB), the
// same within noise at 10,000 (docs/benchmarks.md). Threads keep their own caches, so two arenas
// do not serialize the proxy's allocations on small hosts; MALLOC_CONF still overrides this.
extern "C" {
// NOLINTNEXTLINE: the name and type are jemalloc's interface.
const char* malloc_conf = "narenas:2,dirty_decay_ms:2000";
}
