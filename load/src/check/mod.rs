//! The judgments, made afterwards from what was recorded, never trusting the server.

pub(crate) mod bank;
pub(crate) mod bank_rounds;
pub(crate) mod verdict;
