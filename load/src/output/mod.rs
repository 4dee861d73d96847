//! One output layer: every command's result implements [`Render`] (text for people, JSON for
//! programs, an exit status); tables are data (`table`: rows of cells, one aligned printer); the
//! numbers of one run are one `Summary` (`summary`), held by the run's `Report` (`report`), the
//! demo's rows (`demo`), the retries rows (`retries`) and the sweep's points (`sweep`); `burst`
//! has its rounds; `chart` draws the sweep's charts and `timeline` the page of `report`.

pub(crate) mod bank;
pub(crate) mod bank_rounds;
pub(crate) mod burst;
pub(crate) mod chart;
pub(crate) mod demo;
pub(crate) mod demo_bank;
pub(crate) mod report;
pub(crate) mod retries;
pub(crate) mod summary;
pub(crate) mod sweep;
pub(crate) mod sweep_bank;
pub(crate) mod table;
pub(crate) mod timeline;

use std::path::PathBuf;

use serde::Serialize;

/// Exit status: the answers prove that updates were lost.
pub const EXIT_LOST: u8 = 1;
/// Exit status: bad flags, an unreachable server, refused credentials.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: another client changed the account, so the run proves nothing.
pub const EXIT_INCONCLUSIVE: u8 = 3;
/// Exit status: more requests failed than `--max-error-rate` allows.
pub const EXIT_TOO_MANY_ERRORS: u8 = 4;
/// Exit status: the server stopped answering before the final balance could be read, and the
/// answers alone prove nothing: what was acknowledged and what may have been is reported.
pub const EXIT_SERVER_LOST: u8 = 5;
/// Exit status: the money is right, but the answers contradict each other (two acknowledgements
/// reported the same balance): the server is wrong, without proof that money was lost.
pub const EXIT_INCONSISTENT_ANSWERS: u8 = 6;
/// Exit status: the server answered the balance read after the run with something that is no
/// balance (not a whole number, or past any 64-bit balance): a protocol error of the server.
pub const EXIT_PROTOCOL_ERROR: u8 = 7;
/// Exit status (`bank`): the money is right, but transfers were answered 503 `deadlock`.
pub const EXIT_DEADLOCKS: u8 = 8;
/// Exit status: interrupted (Ctrl-C); the partial report is printed.
pub const EXIT_INTERRUPTED: u8 = 130;

/// A command's result, as the binary prints it.
pub trait Render {
    /// For people: aligned text.
    fn to_text(&self) -> String;
    /// For programs: one JSON document (`--json`).
    fn to_json(&self) -> String;
    /// The process's exit status after printing it.
    fn exit_code(&self) -> u8 {
        0
    }
}

/// A list of results renders as its slice does (`Vec<Row>` as `[Row]`).
impl<T> Render for Vec<T>
where
    [T]: Render,
{
    fn to_text(&self) -> String {
        self.as_slice().to_text()
    }

    fn to_json(&self) -> String {
        self.as_slice().to_json()
    }

    fn exit_code(&self) -> u8 {
        self.as_slice().exit_code()
    }
}

/// A file written, and one line about it: `report`'s result.
#[derive(Debug, Clone, Serialize)]
pub struct Wrote {
    /// Where.
    pub path: PathBuf,
    /// What it holds.
    pub about: String,
}

impl Render for Wrote {
    fn to_text(&self) -> String {
        format!("wrote {}: {}", self.path.display(), self.about)
    }

    fn to_json(&self) -> String {
        json(self)
    }
}

/// `value` as pretty JSON; a value that cannot be written says so in JSON.
/// A share as a percentage to read: `66 %`, `4.2 %`, and `<0.1 %` rather than `0.0 %` when
/// something (however little) is in it.
pub(crate) fn percent(share: f64) -> String {
    let percent = share * 100.0;
    if percent > 0.0 && percent < 0.1 {
        "<0.1 %".to_string()
    } else if percent >= 10.0 || percent == 0.0 {
        format!("{percent:.0} %")
    } else {
        format!("{percent:.1} %")
    }
}

pub(crate) fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
}

/// Writes the fields named in `$fields`, in that order, as one JSON object: the JSON of a result
/// that holds a [`Summary`](summary::Summary) but shows a view of it.
macro_rules! json_object {
    ($serializer:expr, $name:literal { $($field:literal: $value:expr),* $(,)? }) => {{
        use serde::ser::SerializeStruct as _;
        let mut object = $serializer.serialize_struct($name, [$($field),*].len())?;
        $(object.serialize_field($field, &$value)?;)*
        object.end()
    }};
}
pub(crate) use json_object;

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn a_share_is_never_printed_as_zero_when_something_is_in_it() {
        assert_eq!(percent(0.0), "0 %");
        assert_eq!(percent(0.000_4), "<0.1 %");
        assert_eq!(percent(0.042), "4.2 %");
        assert_eq!(percent(0.662), "66 %");
        assert_eq!(percent(1.0), "100 %");
    }
}
