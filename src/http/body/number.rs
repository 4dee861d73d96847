//! A JSON number as it was written, read exactly: is it whole, does it fit an `i64`, which sign?
//!
//! serde_json turns a number it cannot hold as an `i64` or `u64` into an `f64`, and that loses what a
//! client needs to hear: `-9223372036854775809` becomes `-9.223372036854776e18`, `-0` becomes
//! `-0.0`, and `1e400` is refused as if it were not JSON at all. So a field the account refuses is
//! read here from its text, digit by digit, without floating point, and the answer quotes the text.
//!
//! It lives beside the body parser, its only user.

/// What a JSON number's text says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Number {
    /// Below zero (`-0` is not).
    pub negative: bool,
    /// A whole number, however it is written (`5`, `5.0`, `5e2`, `1e400`).
    pub whole: bool,
    /// Written as an integer: no decimal point, no exponent.
    pub integer_syntax: bool,
    /// The value, when it is whole and fits an `i64`.
    pub value: Option<i64>,
}

/// Reads `text` as a JSON number (RFC 8259, section 6); `None` if it is not one.
pub fn read(text: &str) -> Option<Number> {
    let (negative_sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (integer, fraction) = match mantissa.split_once('.') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (mantissa, None),
    };
    let is_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(integer) || (integer.len() > 1 && integer.starts_with('0')) {
        return None;
    }
    if fraction.is_some_and(|fraction| !is_digits(fraction)) {
        return None;
    }
    let exponent = match exponent {
        None => 0,
        Some(exponent) => {
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if !is_digits(digits) {
                return None;
            }
            // Saturate: beyond a billion, the number is far out of range or far below one either way.
            let magnitude = digits.bytes().fold(0i64, |sum, digit| {
                (sum * 10 + i64::from(digit - b'0')).min(1_000_000_000)
            });
            if exponent.starts_with('-') {
                -magnitude
            } else {
                magnitude
            }
        }
    };
    let fraction = fraction.unwrap_or("");
    // The value is `digits * 10^scale`, exactly.
    let digits = format!("{integer}{fraction}");
    let digits = digits.trim_start_matches('0');
    let significant = digits.trim_end_matches('0');
    let trailing_zeros = i64::try_from(digits.len() - significant.len()).ok()?;
    let scale = exponent - i64::try_from(fraction.len()).ok()? + trailing_zeros;
    let integer_syntax = !rest.contains(['.', 'e', 'E']);
    if significant.is_empty() {
        return Some(Number {
            negative: false,
            whole: true,
            integer_syntax,
            value: Some(0),
        });
    }
    let whole = scale >= 0;
    // i64::MAX has 19 digits: more than that cannot fit.
    let value = if whole && i64::try_from(significant.len()).ok()? + scale <= 19 {
        let magnitude = significant.parse::<i128>().ok().and_then(|significant| {
            significant.checked_mul(10i128.checked_pow(u32::try_from(scale).ok()?)?)
        });
        magnitude.and_then(|magnitude| {
            i64::try_from(if negative_sign { -magnitude } else { magnitude }).ok()
        })
    } else {
        None
    };
    Some(Number {
        negative: negative_sign,
        whole,
        integer_syntax,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(negative: bool, whole: bool, integer_syntax: bool, value: Option<i64>) -> Number {
        Number {
            negative,
            whole,
            integer_syntax,
            value,
        }
    }

    #[test]
    fn numbers_are_read_exactly_from_their_text() {
        for (text, expected) in [
            ("5", number(false, true, true, Some(5))),
            ("0", number(false, true, true, Some(0))),
            ("-0", number(false, true, true, Some(0))),
            ("-0.0e7", number(false, true, false, Some(0))),
            ("-5", number(true, true, true, Some(-5))),
            ("5.0", number(false, true, false, Some(5))),
            ("5E+2", number(false, true, false, Some(500))),
            ("0.5e1", number(false, true, false, Some(5))),
            ("500e-2", number(false, true, false, Some(5))),
            ("5.5", number(false, false, false, None)),
            ("5.000000000000000001", number(false, false, false, None)),
            ("1e-400", number(false, false, false, None)),
            (
                "9223372036854775807",
                number(false, true, true, Some(i64::MAX)),
            ),
            (
                "-9223372036854775808",
                number(true, true, true, Some(i64::MIN)),
            ),
            ("9223372036854775808", number(false, true, true, None)),
            ("-9223372036854775809", number(true, true, true, None)),
            ("1e400", number(false, true, false, None)),
            ("-1e400", number(true, true, false, None)),
            ("1e99999999999999999999", number(false, true, false, None)),
            (
                "10000000000000000000000000000",
                number(false, true, true, None),
            ),
        ] {
            assert_eq!(read(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn text_that_is_not_a_json_number_is_refused() {
        for text in [
            "", "-", "+5", "05", "5.", ".5", "5e", "5e+", "1_000", "0x10", "five", "5 ", "--5",
            "5.5.5", "Infinity", "NaN", "1e5e5",
        ] {
            assert_eq!(read(text), None, "{text:?}");
        }
    }
}
