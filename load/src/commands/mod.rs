//! One module per subcommand, each taking a plain description and returning a result.

pub(crate) mod bank;
pub(crate) mod bank_chart;
pub(crate) mod bank_rounds;
pub(crate) mod burst;
pub(crate) mod demo;
pub(crate) mod demo_bank;
pub(crate) mod retries;
pub(crate) mod run;
pub(crate) mod servers;
pub(crate) mod sweep;
pub(crate) mod sweep_bank;
pub(crate) mod timeline;
