//! System tests live in `tests/`; `src/bin/fault_worker.rs` is a worker with a slow task
//! that the fault tests kill, and `src/bin/bench_*.rs` are the benchmarks the README
//! quotes. This library is empty on purpose.
