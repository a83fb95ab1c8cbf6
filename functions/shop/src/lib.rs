//! The tea shop (seed 002, LocalTea). Today: its queue check task, `test_celery`.

pub mod tasks;

use celeriac_tasks::Registry;

/// Every task of the shop, for workers and producers to route by name.
pub fn registry(registry: Registry) -> Registry {
    registry.register(tasks::TestCelery)
}
