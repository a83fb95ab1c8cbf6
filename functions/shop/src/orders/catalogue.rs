//! The sample catalogue `celeriac dev` starts with (`functions/shop/catalogue.json`), so a
//! new user can order at once. Deployed shops load their own SKUs.

use super::store::{OrderError, SharedOrders, Sku};

/// The shipped sample SKUs.
pub fn sample() -> Vec<Sku> {
    // Parsed from a file compiled in; its shape is checked by the test below.
    serde_json::from_str(include_str!("../../catalogue.json")).unwrap_or_default()
}

/// Puts the sample SKUs into an empty store; a store with SKUs is left as it is.
pub async fn seed_if_empty(orders: &SharedOrders) -> Result<usize, OrderError> {
    if !orders.skus().await?.is_empty() {
        return Ok(0);
    }
    let skus = sample();
    let count = skus.len();
    for sku in skus {
        orders.put_sku(sku).await?;
    }
    tracing::info!(skus = count, "sample catalogue loaded");
    Ok(count)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::orders::MemoryOrders;

    #[tokio::test]
    async fn the_sample_parses_and_seeds_an_empty_store_once() {
        assert!(sample().len() >= 3, "the shipped catalogue.json parses");
        let orders: SharedOrders = Arc::new(MemoryOrders::new());
        assert_eq!(seed_if_empty(&orders).await.expect("seed"), sample().len());
        assert_eq!(seed_if_empty(&orders).await.expect("again"), 0);
    }
}
