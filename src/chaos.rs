//! Fault injection, off unless asked for by name: `--chaos drop-after-apply=P`.
//!
//! `drop-after-apply=P` lets a share `P` of the deposits and withdrawals that applied something
//! go through, then drops their connection without answering: the lost acknowledgement of a real
//! network, the one that leaves a client not knowing whether it paid, and that idempotency keys
//! exist for ([`crate::domain::idempotency`]). A replayed answer is never dropped: it applied nothing.
//!
//! Meant for demonstrations and tests; the server logs a warning at start when it is on.
//!
//! A leaf at the top: the configuration names it ([`ServerConfig`](crate::ServerConfig)) and the
//! HTTP layer's connections apply it, while it knows nothing of either.

use std::fmt;
use std::str::FromStr;

/// The faults to inject. The default injects none.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Chaos {
    /// The share (0 to 1) of applied deposits and withdrawals whose answer is dropped.
    pub drop_after_apply: f64,
}

impl Chaos {
    /// Whether any fault is injected.
    pub fn is_on(&self) -> bool {
        self.drop_after_apply > 0.0
    }

    /// Whether to drop this applied request's answer: a draw with probability `drop_after_apply`
    /// (always at 1, never at 0).
    pub(crate) fn drops_answer(self) -> bool {
        self.drop_after_apply >= 1.0
            || (self.drop_after_apply > 0.0 && rand::random_bool(self.drop_after_apply))
    }
}

impl FromStr for Chaos {
    type Err = String;

    /// `drop-after-apply=P`, `P` from 0 to 1; several faults would be separated by commas.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut chaos = Chaos::default();
        for fault in text.split(',').map(str::trim) {
            let Some((name, value)) = fault.split_once('=') else {
                return Err(format!(
                    "`{fault}`: name a fault and its share, e.g. drop-after-apply=0.1"
                ));
            };
            let share = value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|share| (0.0..=1.0).contains(share))
                .ok_or_else(|| format!("`{value}`: the share is a number from 0 to 1"))?;
            match name.trim() {
                "drop-after-apply" => chaos.drop_after_apply = share,
                other => {
                    return Err(format!(
                        "`{other}` is not a fault; the one there is: drop-after-apply"
                    ))
                }
            }
        }
        Ok(chaos)
    }
}

impl fmt::Display for Chaos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "drop-after-apply={}", self.drop_after_apply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_named_with_a_share_from_zero_to_one() {
        let chaos: Chaos = "drop-after-apply=0.25".parse().unwrap();
        assert_eq!(chaos.drop_after_apply, 0.25);
        assert!(chaos.is_on());
        assert!(!Chaos::default().is_on());
        for bad in [
            "0.1",
            "drop-after-apply=2",
            "drop-after-apply=x",
            "drop=0.1",
        ] {
            assert!(bad.parse::<Chaos>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_share_of_one_drops_every_answer_and_zero_none() {
        let all: Chaos = "drop-after-apply=1".parse().unwrap();
        assert!((0..100).all(|_| all.drops_answer()));
        assert!((0..100).all(|_| !Chaos::default().drops_answer()));
    }
}
