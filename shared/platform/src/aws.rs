//! The AWS SDK configuration, loaded once per execution environment.
//!
//! `aws-config` already honours `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>` variables (`AWS_ENDPOINT_URL_SQS`,
//! `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, ...), which is how tests point clients at moto and
//! llm-katan without code paths of their own. This loader keeps that behaviour and adds
//! the one default a local run needs: a region.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Used when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` nor a profile names one.
pub const FALLBACK_REGION: &str = "us-east-1";

/// Loads the shared SDK configuration from the environment (and profile, off Lambda).
pub async fn load() -> SdkConfig {
    let region = aws_config::meta::region::RegionProviderChain::default_provider()
        .or_else(Region::new(FALLBACK_REGION));
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .load()
        .await
}
