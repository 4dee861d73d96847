//! Integration tests of racebank-load against the real racebank server, in one test binary.

mod binary;
mod closing;
mod demo;
mod helpers;
mod run;
