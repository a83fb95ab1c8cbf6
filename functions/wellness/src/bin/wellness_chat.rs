//! Lambda function `wellness_chat`: `POST /chat`, the model's reply now and the topic work queued.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    celeriac_wellness::http::run_chat_lambda("wellness_chat").await
}
