//! The bank's request-body parsers, behind `POST /transfers` and `POST /bank/reset`, fed arbitrary
//! bytes: no panic, and what they accept is what the body says.
//!
//! - An accepted transfer names two different account ids (1 to 64 letters, digits, `-` or `_`)
//!   and a positive amount, and the body holds exactly `from`, `to` and `amount`, read by
//!   serde_json as the same strings and the same integer.
//! - Accepted opening balances are account ids, each once, with balances of zero or more, and the
//!   body holds exactly `balances`, an object serde_json reads as the same ids and integers.
//! - A body not sent as JSON is never accepted.

#![no_main]

use libfuzzer_sys::fuzz_target;
use racebank::fuzzing::{parse_bank_balances, parse_transfer};
use serde_json::{Map, Value};

/// The members of `body` as serde_json reads it, if it is an object of exactly `fields`.
fn object_of(body: &[u8], fields: &[&str]) -> Option<Map<String, Value>> {
    let Value::Object(object) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut wanted = fields.to_vec();
    keys.sort_unstable();
    wanted.sort_unstable();
    (keys == wanted).then_some(object)
}

/// The integer serde_json reads in `value`: `-0`, which it reads as a float, is 0 as the parsers
/// read it.
fn integer(value: &Value) -> Option<i64> {
    let negative_zero = |f: f64| f == 0.0 && f.is_sign_negative();
    value
        .as_i64()
        .or_else(|| value.as_f64().is_some_and(negative_zero).then_some(0))
}

/// Whether `id` is an account id.
fn is_account_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fuzz_target!(|data: &[u8]| {
    if let Ok((from, to, amount)) = parse_transfer(data, true) {
        assert!(
            is_account_id(&from) && is_account_id(&to),
            "{from:?} {to:?}"
        );
        assert_ne!(from, to, "accepted a transfer to the same account");
        assert!(amount.get() > 0, "accepted a non-positive amount");
        let object = object_of(data, &["from", "to", "amount"]).expect("a transfer body");
        assert_eq!(object["from"].as_str(), Some(from.as_str()), "{data:?}");
        assert_eq!(object["to"].as_str(), Some(to.as_str()), "{data:?}");
        assert_eq!(integer(&object["amount"]), Some(amount.get()), "{data:?}");
    }
    if let Ok(balances) = parse_bank_balances(data, true) {
        let object = object_of(data, &["balances"]).expect("a bank reset body");
        let read = object["balances"]
            .as_object()
            .expect("`balances` is an object");
        // serde_json keeps the last of a repeated key; the parser refuses one.
        assert_eq!(read.len(), balances.len(), "{data:?}");
        for (id, balance) in &balances {
            assert!(is_account_id(id), "{id:?}");
            assert!(*balance >= 0, "accepted a negative balance");
            assert_eq!(integer(&read[id]), Some(*balance), "{data:?}");
        }
    }
    assert!(parse_transfer(data, false).is_err());
    assert!(parse_bank_balances(data, false).is_err());
});
