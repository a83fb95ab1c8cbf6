//! Lambda function `update_user_recommendations`: the user's recommendations after each chat message, from its queue (`wellness-recommendations`).

use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_sqs_function;
use celeriac_wellness::WellnessBackend;
use celeriac_wellness::tasks::UpdateUserRecommendations;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let backend = WellnessBackend::from_env("update_user_recommendations").await?;
    run_sqs_function(
        "update_user_recommendations",
        Registry::new().register(UpdateUserRecommendations(backend)),
    )
    .await
}
