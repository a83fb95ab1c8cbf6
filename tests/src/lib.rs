//! System tests live in `tests/`; `src/bin/fault_worker.rs` is a worker with a slow task
//! that the fault tests kill. This library is empty on purpose.
