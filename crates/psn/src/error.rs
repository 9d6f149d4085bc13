//! One place that turns errors into exit codes: 0 success, 2 invalid input or usage (nothing
//! was written), 1 any other failure. Messages say what was wrong and how to fix it.

use std::process::ExitCode;

use psn_store::StoreError;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The input was invalid; nothing was written. Exit code 2.
    #[error("{0}")]
    Invalid(String),
    /// The input was invalid and a report (validation, …) was already printed. Exit code 2.
    #[error("{0}")]
    Reported(String),
    /// A failure whose report (doctor's checks, hub states, …) was already printed. Exit
    /// code 1; with `--json` nothing more is added to stdout, so it stays one JSON document.
    #[error("{0}")]
    ReportedFailure(String),
    /// Anything else. Exit code 1.
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Shorthand for an invalid-input error.
pub fn invalid(msg: impl Into<String>) -> CliError {
    CliError::Invalid(msg.into())
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Invalid(_) | CliError::Reported(_) => 2,
            CliError::Failed(_) | CliError::ReportedFailure(_) => 1,
        }
    }

    /// Prints the error (stderr; with `--json` also a JSON object on stdout) and returns the
    /// exit code.
    pub fn report(&self, json: bool) -> ExitCode {
        let code = self.exit_code();
        let message = self.to_string();
        if json && !matches!(self, CliError::Reported(_) | CliError::ReportedFailure(_)) {
            println!(
                "{}",
                serde_json::json!({"error": message, "exit_code": code})
            );
        }
        eprintln!("error: {message}");
        ExitCode::from(code)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        if e.is_user_error() {
            CliError::Invalid(e.to_string())
        } else {
            CliError::Failed(anyhow::Error::new(e))
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Failed(e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Failed(e.into())
    }
}
