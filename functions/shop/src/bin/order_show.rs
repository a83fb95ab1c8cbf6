//! Lambda function `order_show`: `GET /api/v1/orders/{order_id}`.

use celeriac_shop::orders::http::{run_lambda_endpoint, show};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("order_show", show).await
}
