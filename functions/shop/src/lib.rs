//! The tea shop (seed 002, LocalTea): its accounts, its orders, and its tasks
//! (`send_email`, `test_celery`).

pub mod accounts;
pub mod orders;
pub mod tasks;

use celeriac_tasks::Registry;

/// Every task of the shop, for workers and producers to route by name; `mail` is the
/// `send_email` task with the mailer this process sends through, `expiry` the order sweep
/// over this process's order store.
pub fn registry(
    registry: Registry,
    mail: celeriac_mail::SendEmail,
    expiry: orders::expiry::CheckExpiredOrders,
) -> Registry {
    registry
        .register(tasks::TestCelery)
        .register(mail)
        .register(expiry)
}
