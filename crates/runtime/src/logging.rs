//! One tracing set-up for all binaries so that log filters and formats behave the same everywhere.

use crate::flags::LogFormat;
use tracing_subscriber::EnvFilter;

/// Why logging could not be initialised.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter expression does not parse.
    #[error("invalid log filter {filter:?}: {reason}")]
    InvalidFilter {
        /// The rejected filter.
        filter: String,
        /// What the parser said.
        reason: String,
    },
    /// A global subscriber was already installed.
    #[error("logging already initialised")]
    AlreadyInitialised,
}

/// Installs the global subscriber with `filter` (EnvFilter syntax) in `format`.
pub fn init(filter: &str, format: LogFormat) -> Result<(), LoggingError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|e| LoggingError::InvalidFilter {
        filter: filter.to_string(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let res = match format {
        LogFormat::Text => builder.with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    res.map_err(|_| LoggingError::AlreadyInitialised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_filter() {
        let err = init("info,[", LogFormat::Text).expect_err("bad filter");
        assert!(matches!(err, LoggingError::InvalidFilter { .. }), "{err}");
    }
}
