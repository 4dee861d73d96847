//! The name of an account: of the single account in a shared store (`--account`), and of each of
//! the bank's accounts. A leaf: stores use it as a key prefix, logs print it.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

/// The name of an account in a shared store: 1 to 64 ASCII letters, digits, `-` or `_`, so it is
/// safe as a key prefix and in a log line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(String);

impl AccountId {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` is an account id, without making one.
    pub(crate) fn is_valid(text: &str) -> bool {
        (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

/// Maps keyed by id are looked up by the text a client sent, with no id made for it: the derived
/// `Hash` and `Eq` are the inner `String`'s, which are `str`'s.
impl Borrow<str> for AccountId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Default for AccountId {
    fn default() -> Self {
        Self("main".to_string())
    }
}

impl FromStr for AccountId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(text) {
            Ok(Self(text.to_string()))
        } else {
            Err(format!(
                "`{text}` is not an account id: use 1 to 64 letters, digits, `-` or `_`"
            ))
        }
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_short_and_plain() {
        assert!("main".parse::<AccountId>().is_ok());
        assert!("test-42_a".parse::<AccountId>().is_ok());
        for bad in ["", "a b", "a:b", "é", &"x".repeat(65)] {
            assert!(
                bad.parse::<AccountId>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
