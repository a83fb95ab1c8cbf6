//! Lambda function `order_pay`: `POST /api/v1/orders/{order_id}/pay`.

use celeriac_shop::orders::http::{pay, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("order_pay", pay).await
}
