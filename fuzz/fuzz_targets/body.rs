//! The request-body parsers behind `/deposit`, `/withdraw` and `/reset`, and the JSON number
//! reader under them, fed arbitrary bytes: no panic, and what they accept is what the body says.
//!
//! - An accepted amount is positive, and it is the body's only field, read by serde_json as the
//!   same integer.
//! - An accepted reset balance is zero or more, read the same way.
//! - A body not sent as JSON is never accepted.
//! - A number the reader says is an integer that fits an `i64` parses as that `i64`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use racebank::fuzzing::number;
use racebank::fuzzing::{parse_amount, parse_reset_balance};

/// The integer serde_json reads as the only field `field` of `body`.
fn only_field(body: &[u8], field: &str) -> Option<i64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    (object.len() == 1).then_some(())?;
    let value = object.get(field)?;
    // `-0` is 0 to the parsers; serde_json reads it as a float.
    let negative_zero = |f: f64| f == 0.0 && f.is_sign_negative();
    value
        .as_i64()
        .or_else(|| value.as_f64().is_some_and(negative_zero).then_some(0))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(amount) = parse_amount(data, true) {
        assert!(amount.get() > 0, "accepted a non-positive amount");
        assert_eq!(only_field(data, "amount"), Some(amount.get()), "{data:?}");
    }
    if let Ok(balance) = parse_reset_balance(data, true) {
        assert!(balance >= 0, "accepted a negative balance");
        assert_eq!(only_field(data, "balance"), Some(balance), "{data:?}");
    }
    assert!(parse_amount(data, false).is_err());
    assert!(parse_reset_balance(data, false).is_err());

    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(read) = number::read(text) {
            if let (true, Some(value)) = (read.integer_syntax, read.value) {
                assert_eq!(text.parse::<i64>(), Ok(value), "{text}");
            }
            if read.value.is_some() {
                assert!(read.whole, "{text}");
            }
        }
    }
});
