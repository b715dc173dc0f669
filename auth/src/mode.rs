//! [`StoreMode`]: where credentials go (`cli_auth_credentials_store`).

use std::fmt;
use std::str::FromStr;

/// Which credential backend to use. Config key `cli_auth_credentials_store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreMode {
    /// `$CODEX_HOME/auth.json`, mode 0600, written atomically.
    #[default]
    File,
    /// The OS keyring only; an unavailable keyring is an error.
    Keyring,
    /// The OS keyring; when it is unavailable, `auth.json` with a warning the user sees.
    Auto,
}

impl StoreMode {
    /// The config spelling: `file`, `keyring`, `auto`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreMode::File => "file",
            StoreMode::Keyring => "keyring",
            StoreMode::Auto => "auto",
        }
    }
}

impl fmt::Display for StoreMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `cli_auth_credentials_store` value that is not one of the allowed ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid credential store {value:?}: expected one of \"file\", \"keyring\", \"auto\"")]
pub struct ParseStoreModeError {
    /// The rejected value.
    pub value: String,
}

impl FromStr for StoreMode {
    type Err = ParseStoreModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "file" => Ok(StoreMode::File),
            "keyring" => Ok(StoreMode::Keyring),
            "auto" => Ok(StoreMode::Auto),
            other => Err(ParseStoreModeError {
                value: other.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_modes() {
        assert_eq!("file".parse::<StoreMode>().unwrap(), StoreMode::File);
        assert_eq!("keyring".parse::<StoreMode>().unwrap(), StoreMode::Keyring);
        assert_eq!("auto".parse::<StoreMode>().unwrap(), StoreMode::Auto);
    }

    #[test]
    fn rejects_others_naming_value_and_allowed() {
        let e = "Keyring".parse::<StoreMode>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid credential store \"Keyring\": expected one of \"file\", \"keyring\", \"auto\""
        );
    }
}
