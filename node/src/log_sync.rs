//! The hidden test switch that turns the Raft log's fsync off ([`LogSync::UnsafeSkip`]).
//!
//! It exists for one test: the power-loss run started with it must lose acknowledged messages,
//! which proves the run can see a broken fsync. It is an environment variable, not a config key,
//! so that no config file written for a real cluster can carry it, and it takes one long value
//! that says what it does. This module only reads and checks the variable; the syncer in
//! `herald_raft::log_store` does the skipping.

use herald_raft::log_store::{LogSync, UNSAFE_SKIP_LOG_FSYNC_ENV, UNSAFE_SKIP_LOG_FSYNC_VALUE};

/// The variable was set to something other than the one value it accepts.
#[derive(Debug, thiserror::Error)]
#[error(
    "{UNSAFE_SKIP_LOG_FSYNC_ENV}={value:?} is not accepted: the only value is \
     {UNSAFE_SKIP_LOG_FSYNC_VALUE:?} (a test switch that makes the node lose acknowledged \
     messages on power loss); unset it to run normally"
)]
pub struct UnsafeSwitchError {
    value: String,
}

/// The log's sync mode from the process environment.
pub fn from_env() -> Result<LogSync, UnsafeSwitchError> {
    parse(std::env::var_os(UNSAFE_SKIP_LOG_FSYNC_ENV).map(|v| v.to_string_lossy().into_owned()))
}

/// The sync mode for a value of the variable (None: unset).
pub fn parse(value: Option<String>) -> Result<LogSync, UnsafeSwitchError> {
    match value {
        None => Ok(LogSync::Fsync),
        Some(v) if v == UNSAFE_SKIP_LOG_FSYNC_VALUE => Ok(LogSync::UnsafeSkip),
        Some(value) => Err(UnsafeSwitchError { value }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_one_long_value_turns_fsync_off() {
        assert_eq!(parse(None).unwrap(), LogSync::Fsync);
        assert_eq!(
            parse(Some(UNSAFE_SKIP_LOG_FSYNC_VALUE.into())).unwrap(),
            LogSync::UnsafeSkip
        );
        for bad in ["1", "true", "", "yes"] {
            let e = parse(Some(bad.into())).unwrap_err().to_string();
            assert!(e.contains(UNSAFE_SKIP_LOG_FSYNC_ENV), "{e}");
            assert!(e.contains(UNSAFE_SKIP_LOG_FSYNC_VALUE), "{e}");
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
