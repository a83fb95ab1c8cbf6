//! The AWS SDK configuration, loaded once per execution environment.
//!
//! `aws-config` already honours `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>` variables (`AWS_ENDPOINT_URL_SQS`,
//! `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, ...), which is how tests point clients at moto and
//! llm-katan without code paths of their own. This loader keeps that behaviour, refuses an
//! endpoint variable that is set but empty (the SDK would panic on it at the first call),
//! and takes the region from the environment only: Lambda always sets `AWS_REGION`, and
//! off AWS the instance-metadata lookup would only add a second of init time.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::{ConfigError, EnvSource, ProcessEnv};

/// Used when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set.
pub const FALLBACK_REGION: &str = "us-east-1";

/// Loads the shared SDK configuration from the process environment.
pub async fn load() -> Result<SdkConfig, ConfigError> {
    check_endpoints(std::env::vars())?;
    let region = ProcessEnv
        .var("AWS_REGION")
        .or_else(|| ProcessEnv.var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| FALLBACK_REGION.to_owned());
    Ok(aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .load()
        .await)
}

fn check_endpoints(vars: impl Iterator<Item = (String, String)>) -> Result<(), ConfigError> {
    for (key, value) in vars {
        if key.starts_with("AWS_ENDPOINT_URL") && value.trim().is_empty() {
            return Err(ConfigError {
                key: "AWS_ENDPOINT_URL_*",
                reason: format!("{key} is set but empty: unset it or give a URL"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_endpoint_variable_is_named() {
        let vars = vec![
            (
                "AWS_ENDPOINT_URL_SQS".to_owned(),
                "http://127.0.0.1:5000".to_owned(),
            ),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME".to_owned(), String::new()),
        ];
        let err = check_endpoints(vars.into_iter()).expect_err("empty endpoint");
        assert!(err.reason.contains("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"));
        assert!(check_endpoints(std::iter::empty()).is_ok());
    }
}
