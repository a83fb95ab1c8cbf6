//! Lambda function `user_recommendations`: `GET /user/{user_id}/recommendations`.

use celeriac_wellness::http::{recommendations, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("user_recommendations", recommendations).await
}
