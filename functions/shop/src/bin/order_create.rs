//! Lambda function `order_create`: `POST /api/v1/orders`.

use celeriac_shop::orders::http::{create, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("order_create", create).await
}
