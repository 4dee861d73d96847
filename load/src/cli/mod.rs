//! The command line and `--config`, turned into the plain descriptions the commands take.

pub(crate) mod config_file;
pub(crate) mod opts;
