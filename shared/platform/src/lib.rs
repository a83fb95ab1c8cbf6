//! What every celeriac function stands on.
//!
//! A Lambda `main` reads [`config::Config`] once, calls [`telemetry::init`], builds its
//! adapters from the config, and hands an axum `Router` to [`http::run_lambda`]. The dev
//! runner (`celeriac dev`) uses the same pieces, so local and Lambda run the same code.

pub mod aws;
pub mod config;
pub mod error;
pub mod health;
pub mod http;
pub mod json;
pub mod metrics;
pub mod telemetry;
pub mod token;

pub use config::Config;
pub use error::Error;
