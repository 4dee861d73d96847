//! The command line and `--config`, turned into the plain descriptions the commands take.

pub(crate) mod bank_api;
pub(crate) mod config_file;
pub(crate) mod opts;
