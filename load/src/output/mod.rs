//! Everything printed or written: the run's report, charts.

pub(crate) mod chart;
pub(crate) mod report;
