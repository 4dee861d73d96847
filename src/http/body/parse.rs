//! The parsers behind the bodies, apart from HTTP: bytes in, an amount, a balance or a problem out.
//! The fuzz targets (`fuzz/`, feature `fuzzing`) feed them arbitrary bytes.

use serde_json::value::RawValue;

use crate::domain::id::AccountId;
use crate::domain::money::Amount;
use crate::http::body::number;
use crate::http::problem::Problem;
use crate::wire::bank::TransferBody;
use crate::wire::AmountBody;

/// The parsing behind `/deposit` and `/withdraw`, apart from HTTP: `body` as sent, and whether it
/// was sent as JSON. Public for the fuzz targets (`fuzz/`) only.
pub fn parse_amount(body: &[u8], is_json: bool) -> Result<Amount, Problem> {
    if !is_json {
        return Err(unsupported_media_type("amount"));
    }
    // The only body a deposit or withdrawal takes; parsing it allocates nothing.
    let parsed = serde_json::from_slice::<AmountBody>(body);
    // Serde would also take `[5]` for the struct; only an object is an amount body.
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if let (Ok(AmountBody { amount }), true) = (&parsed, is_object) {
        if let Some(amount) = Amount::new(*amount) {
            return Ok(amount);
        }
    }
    // Something is wrong: find out what, slowly, to say it precisely.
    let text = json_object(body, "amount")?;
    minor_units(text, "amount", 1)?;
    Err(Problem::invalid(
        "amount",
        match parsed {
            Err(error) => format!("the body is not a valid `{{\"amount\": N}}`: {error}"),
            Ok(_) => "`amount` must be positive".to_string(),
        },
    ))
}

/// The parsing behind a `/reset` with a body, apart from HTTP. Public for the fuzz targets
/// (`fuzz/`) only.
pub fn parse_reset_balance(body: &[u8], is_json: bool) -> Result<i64, Problem> {
    if !is_json {
        return Err(unsupported_media_type("balance"));
    }
    let text = json_object(body, "balance")?;
    minor_units(text, "balance", 0)
}

fn example(field: &str) -> String {
    format!(r#"{{"{field}": 5}}"#)
}

pub(crate) fn unsupported_media_type(field: &str) -> Problem {
    Problem::UnsupportedMediaType(format!(
        "send the body as JSON with `Content-Type: application/json`, e.g. {}",
        example(field)
    ))
}

/// Parses a JSON object that holds only `field`, once, and returns the field's text.
fn json_object<'a>(body: &'a [u8], field: &str) -> Result<&'a str, Problem> {
    let fields = json_members(body, &[field], &example(field))?;
    match fields.first() {
        Some((_, value)) => Ok(value.get()),
        None => Err(Problem::missing(field)),
    }
}

/// Parses a JSON object whose members are among `allowed`, each once, and returns them as
/// written; `example` is a body to show when the shape is wrong.
fn json_members<'a>(
    body: &'a [u8],
    allowed: &[&str],
    example: &str,
) -> Result<Vec<(String, &'a RawValue)>, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::MalformedBody(format!(
            "the body is empty; send {example}"
        )));
    }
    // A raw value checks the syntax without reading numbers as floats, so `1e400` is still JSON.
    let value: &RawValue = serde_json::from_slice(body)
        .map_err(|e| Problem::MalformedBody(format!("the body is not valid JSON: {e}")))?;
    if !value.get().starts_with('{') {
        return Err(Problem::MalformedBody(format!(
            "the body must be a JSON object such as {example}, not {}",
            kind_of(value.get())
        )));
    }
    let Fields(fields) = serde_json::from_str(value.get()).map_err(|e| {
        let detail = e.to_string();
        match detail.split_once(" appears twice") {
            Some((key, _)) => Problem::invalid(
                key.trim_matches('`'),
                format!("{key} appears twice; send it once, e.g. {example}"),
            ),
            None => Problem::MalformedBody(format!("the body is not valid JSON: {detail}")),
        }
    })?;
    if let Some((unknown, _)) = fields
        .iter()
        .find(|(key, _)| !allowed.contains(&key.as_str()))
    {
        let takes = allowed
            .iter()
            .map(|field| format!("`{field}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Problem::invalid(
            unknown,
            format!("unknown field `{unknown}`: the body takes only {takes}, e.g. {example}"),
        ));
    }
    Ok(fields)
}

const TRANSFER_EXAMPLE: &str = r#"{"from": "alice", "to": "bob", "amount": 5}"#;

/// The parsing behind `POST /transfers`: `(from, to, amount)`, the ids as sent (whether the bank
/// holds them is the bank's to say), two different accounts. Public for the fuzz targets only.
pub fn parse_transfer(body: &[u8], is_json: bool) -> Result<(String, String, Amount), Problem> {
    if !is_json {
        return Err(Problem::UnsupportedMediaType(format!(
            "send the body as JSON with `Content-Type: application/json`, e.g. {TRANSFER_EXAMPLE}"
        )));
    }
    // The body of nearly every transfer, read in one pass; anything else, slowly, to say what.
    let parsed = serde_json::from_slice::<TransferBody>(body);
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if let (Ok(TransferBody { from, to, amount }), true) = (parsed, is_object) {
        let valid = AccountId::is_valid;
        if let (true, true, true, Some(amount)) =
            (valid(&from), valid(&to), from != to, Amount::new(amount))
        {
            return Ok((from, to, amount));
        }
    }
    transfer_carefully(body)
}

/// A transfer body read member by member, so that a refusal names exactly what is wrong.
fn transfer_carefully(body: &[u8]) -> Result<(String, String, Amount), Problem> {
    let fields = json_members(body, &["from", "to", "amount"], TRANSFER_EXAMPLE)?;
    let member = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.get())
            .ok_or_else(|| Problem::missing(name))
    };
    let from = account_id(member("from")?, "from")?;
    let to = account_id(member("to")?, "to")?;
    let amount = minor_units(member("amount")?, "amount", 1)?;
    if from == to {
        return Err(Problem::invalid(
            "to",
            format!(
                "`from` and `to` are both `{from}`: a transfer moves money between two accounts"
            ),
        ));
    }
    let amount = Amount::new(amount)
        .ok_or_else(|| Problem::invalid("amount", "`amount` must be positive"))?;
    Ok((from, to, amount))
}

/// An account id as a JSON string: 1 to 64 letters, digits, `-` or `_`.
fn account_id(text: &str, field: &str) -> Result<String, Problem> {
    let id: String = serde_json::from_str(text).map_err(|_| {
        Problem::invalid(
            field,
            format!(
                "`{field}` must be an account id as a string, such as \"alice\", not {}",
                kind_of(text)
            ),
        )
    })?;
    id.parse::<AccountId>()
        .map_err(|error| Problem::invalid(field, format!("`{field}`: {error}")))?;
    Ok(id)
}

/// The parsing behind a `/bank/reset` with a body: `{"balances": {"id": N, ...}}`, each balance a
/// whole number of minor units, zero or more, each id once. Public for the fuzz targets only.
pub fn parse_bank_balances(body: &[u8], is_json: bool) -> Result<Vec<(String, i64)>, Problem> {
    let example = r#"{"balances": {"alice": 100, "bob": 0}}"#;
    if !is_json {
        return Err(Problem::UnsupportedMediaType(format!(
            "send the body as JSON with `Content-Type: application/json`, e.g. {example}"
        )));
    }
    let fields = json_members(body, &["balances"], example)?;
    let Some((_, balances)) = fields.first() else {
        return Err(Problem::missing("balances"));
    };
    if !balances.get().starts_with('{') {
        return Err(Problem::invalid(
            "balances",
            format!(
                "`balances` must be an object of account ids and balances, e.g. {example}, not {}",
                kind_of(balances.get())
            ),
        ));
    }
    let Fields(entries) = serde_json::from_str(balances.get())
        .map_err(|e| Problem::invalid("balances", format!("`balances`: {e}")))?;
    entries
        .into_iter()
        .map(|(id, value)| {
            let field = format!("balances.{id}");
            id.parse::<AccountId>()
                .map_err(|error| Problem::invalid(&field, error))?;
            Ok((id, minor_units(value.get(), &field, 0)?))
        })
        .collect()
}

/// The members of a JSON object as written, in order; a key written twice is an error, where
/// serde_json's own maps would silently keep the last.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut fields: Vec<(String, &'de RawValue)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if fields.iter().any(|(seen, _)| *seen == key) {
                        return Err(serde::de::Error::custom(format!("`{key}` appears twice")));
                    }
                    fields.push((key, map.next_value()?));
                }
                Ok(Fields(fields))
            }
        }

        deserializer.deserialize_map(Visitor)
    }
}

/// Reads `text`, the JSON value of `field`, as a whole number of minor units no smaller than `min`.
/// A refusal quotes the number as it was sent.
fn minor_units(text: &str, field: &str, min: i64) -> Result<i64, Problem> {
    let Some(number) = number::read(text) else {
        return Err(Problem::invalid(
            field,
            format!(
                "`{field}` must be a whole number of minor units (cents), not {}",
                kind_of(text)
            ),
        ));
    };
    let refusal = if number.negative || number.value.is_some_and(|value| value < min) {
        match min {
            1 => format!("`{field}` must be positive, got {text}"),
            _ => format!("`{field}` must be at least {min}, got {text}"),
        }
    } else if !number.whole {
        format!("`{field}` must be a whole number of minor units (cents), got {text}")
    } else if number.value.is_none() {
        format!(
            "`{field}` is {text}, beyond the largest the account holds ({})",
            i64::MAX
        )
    } else if !number.integer_syntax {
        format!(
            "`{field}` must be written as an integer, without a decimal point or exponent, got {text}"
        )
    } else {
        return Ok(number.value.unwrap_or_default());
    };
    Err(Problem::invalid(field, refusal))
}

/// What kind of JSON value `text` is, from its first character.
fn kind_of(text: &str) -> &'static str {
    match text.trim_start().bytes().next() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_read_in_one_pass_is_the_transfer_read_member_by_member() {
        let bodies = [
            r#"{"from": "a", "to": "b", "amount": 5}"#,
            r#" {"amount":1,"to":"b-2","from":"A_1"} "#,
            r#"{"from": "\u0061", "to": "b", "amount": 5}"#,
            r#"{"from": "a", "to": "a", "amount": 5}"#,
            r#"{"from": "a", "to": "b", "amount": 0}"#,
            r#"{"from": "a", "to": "b", "amount": -0}"#,
            r#"{"from": "a", "to": "b", "amount": 5.0}"#,
            r#"{"from": "a", "to": "b", "amount": 1e2}"#,
            r#"{"from": "a", "to": "b", "amount": 9223372036854775807}"#,
            r#"{"from": "a", "to": "b", "amount": 9223372036854775808}"#,
            r#"{"from": "a", "from": "c", "to": "b", "amount": 5}"#,
            r#"{"from": "a", "to": "b", "amount": 5, "memo": 1}"#,
            r#"{"from": "a b", "to": "b", "amount": 5}"#,
            r#"{"from": "", "to": "b", "amount": 5}"#,
            r#"{"from": 1, "to": "b", "amount": 5}"#,
            r#"{"to": "b", "amount": 5}"#,
            r#"["a", "b", 5]"#,
            "",
        ];
        for body in bodies {
            let quick = parse_transfer(body.as_bytes(), true);
            let careful = transfer_carefully(body.as_bytes());
            assert_eq!(quick, careful, "{body}");
        }
    }
}
