//! Lambda function `shop_skus`: `GET /api/v1/skus`.

use celeriac_shop::orders::http::{run_lambda_endpoint, skus};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("shop_skus", skus).await
}
