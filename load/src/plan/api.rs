//! The shape of the API under test: its routes, its body, its headers, and where an answer keeps
//! the balance.
//!
//! The defaults are racebank's own API ([`racebank::wire`]), so a user of racebank changes nothing.
//! Another service that holds an account describes itself with route templates
//! (`POST /api/v1/accounts/{account}/deposits`), a body template (`{"amount_cents": {amount}}`),
//! headers (`Authorization: Bearer ...`) and an RFC 6901 JSON pointer to the balance
//! (`/data/balance`). Everything is checked here, before anything is sent.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::Method;
use racebank::wire::{paths, BalanceBody};

/// The placeholder of the amount in a body template.
pub(crate) const AMOUNT: &str = "{amount}";
/// The placeholder of the account in a route or body template.
pub(crate) const ACCOUNT: &str = "{account}";

/// A route as given on the command line: `METHOD /path`, the path possibly holding `{account}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate {
    /// The method.
    pub method: Method,
    /// The path, relative to the base URL's own path.
    pub path: String,
}

impl RouteTemplate {
    fn new(method: Method, path: &str) -> Self {
        RouteTemplate {
            method,
            path: path.to_string(),
        }
    }
}

impl FromStr for RouteTemplate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (method, path) = text.trim().split_once(' ').ok_or_else(|| {
            format!("`{text}` is not a route: write `METHOD /path`, e.g. `POST /deposit`")
        })?;
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("`{method}` is not an HTTP method"))?;
        let path = path.trim();
        if !path.starts_with('/') || path.contains(char::is_whitespace) {
            return Err(format!(
                "`{path}`: a route's path starts with / and has no spaces"
            ));
        }
        Ok(RouteTemplate::new(method, path))
    }
}

impl fmt::Display for RouteTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// A `-H 'Name: value'` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name.
    pub name: HeaderName,
    /// The value.
    pub value: HeaderValue,
}

impl FromStr for Header {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` is not a header: write `Name: value`"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("`{}` is not a header name", name.trim()))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("the value of `{name}` is not a valid header value"))?;
        Ok(Header { name, value })
    }
}

/// Where the balance is in an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalancePointer {
    /// `{"balance": N}` at the top: parsed into a struct, without building a JSON tree.
    TopLevel,
    /// Anywhere else, as an RFC 6901 JSON pointer (`/data/balance`).
    Pointer(String),
}

impl BalancePointer {
    /// The pointer as given: `""` is the whole document, otherwise it starts with `/`.
    pub fn parse(pointer: &str) -> Result<Self, String> {
        if pointer == "/balance" {
            return Ok(BalancePointer::TopLevel);
        }
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!(
                "`{pointer}` is not a JSON pointer: it starts with / (e.g. /data/balance)"
            ));
        }
        Ok(BalancePointer::Pointer(pointer.to_string()))
    }

    /// The balance in `body`: a JSON integer, or a string holding one (some APIs send money as
    /// strings). `None` when it is not there.
    #[inline]
    pub fn read(&self, body: &[u8]) -> Option<i64> {
        match self {
            BalancePointer::TopLevel => serde_json::from_slice::<BalanceBody>(body)
                .ok()
                .map(|answer| answer.balance),
            BalancePointer::Pointer(pointer) => {
                let document: serde_json::Value = serde_json::from_slice(body).ok()?;
                match document.pointer(pointer)? {
                    serde_json::Value::Number(number) => number.as_i64(),
                    serde_json::Value::String(text) => text.trim().parse().ok(),
                    _ => None,
                }
            }
        }
    }
}

impl fmt::Display for BalancePointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BalancePointer::TopLevel => f.write_str("/balance"),
            BalancePointer::Pointer(pointer) => f.write_str(pointer),
        }
    }
}

/// A body with the amount left out: `prefix + amount + suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTemplate {
    prefix: String,
    suffix: String,
}

impl BodyTemplate {
    /// The body for `amount`.
    pub fn render(&self, amount: i64) -> Bytes {
        Bytes::from(format!("{}{amount}{}", self.prefix, self.suffix))
    }
}

/// Everything about the API under test that is not the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// The deposit route, `{account}` filled in.
    pub deposit: RouteTemplate,
    /// The withdrawal route, `{account}` filled in.
    pub withdraw: RouteTemplate,
    /// The balance route, `{account}` filled in.
    pub balance: RouteTemplate,
    /// The body of a deposit or withdrawal.
    pub body: BodyTemplate,
    /// Headers sent with every request (the content type first).
    pub headers: Vec<Header>,
    /// Where answers keep the balance.
    pub pointer: BalancePointer,
    /// `--follow-redirects`: follow a redirect to the same origin (scheme, host, port); one to
    /// another origin is never followed, so the headers never leave for it.
    pub follow_redirects: bool,
}

impl Default for Api {
    /// racebank's own API.
    fn default() -> Self {
        ApiSpec::default()
            .build()
            .expect("racebank's own API is a valid API")
    }
}

/// The API as the flags or the config file give it, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiSpec {
    /// `--deposit`.
    pub deposit: RouteTemplate,
    /// `--withdraw`.
    pub withdraw: RouteTemplate,
    /// `--balance`.
    pub balance: RouteTemplate,
    /// `--body`, holding `{amount}` once.
    pub body: String,
    /// `--account`, for `{account}`.
    pub account: Option<String>,
    /// `-H`.
    pub headers: Vec<Header>,
    /// `--balance-pointer`.
    pub pointer: String,
}

/// racebank's body template.
pub(crate) const DEFAULT_BODY: &str = r#"{"amount":{amount}}"#;

impl Default for ApiSpec {
    fn default() -> Self {
        ApiSpec {
            deposit: RouteTemplate::new(Method::POST, paths::DEPOSIT),
            withdraw: RouteTemplate::new(Method::POST, paths::WITHDRAW),
            balance: RouteTemplate::new(Method::GET, paths::BALANCE),
            body: DEFAULT_BODY.to_string(),
            account: None,
            headers: Vec::new(),
            pointer: "/balance".to_string(),
        }
    }
}

impl ApiSpec {
    /// Fills in `{account}`, checks the templates and the pointer.
    pub(crate) fn build(&self) -> anyhow::Result<Api> {
        let account = |text: &str, what: &str| -> anyhow::Result<String> {
            if !text.contains(ACCOUNT) {
                return Ok(text.to_string());
            }
            match &self.account {
                Some(id) => Ok(text.replace(ACCOUNT, id)),
                None => {
                    bail!("{what} `{text}` names {ACCOUNT}: give the account with --account ID")
                }
            }
        };
        let route = |template: &RouteTemplate, what: &str| -> anyhow::Result<RouteTemplate> {
            let path = account(&template.path, what)?;
            if path.contains(['{', '}']) {
                bail!("{what} `{path}` has a placeholder other than {ACCOUNT}");
            }
            hyper::Uri::try_from(path.as_str())
                .with_context(|| format!("{what} `{path}` is not a valid request path"))?;
            Ok(RouteTemplate::new(template.method.clone(), &path))
        };
        let body = account(&self.body, "--body")?;
        let Some((prefix, suffix)) = body.split_once(AMOUNT) else {
            bail!(
                "--body `{body}` has no {AMOUNT}: write where the amount goes, e.g. {DEFAULT_BODY}"
            );
        };
        if suffix.contains(AMOUNT) {
            bail!("--body `{body}` names {AMOUNT} twice");
        }
        let body = BodyTemplate {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
        };
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        if !self
            .headers
            .iter()
            .any(|header| header.name == CONTENT_TYPE)
        {
            headers.push(Header {
                name: CONTENT_TYPE,
                value: HeaderValue::from_static("application/json"),
            });
        }
        headers.extend(self.headers.iter().cloned());
        let is_json = headers.iter().any(|header| {
            header.name == CONTENT_TYPE
                && header
                    .value
                    .to_str()
                    .is_ok_and(|value| value.to_ascii_lowercase().contains("json"))
        });
        if is_json {
            serde_json::from_slice::<serde_json::Value>(&body.render(1))
                .with_context(|| format!("--body `{}1{}` is not JSON", body.prefix, body.suffix))?;
        }
        Ok(Api {
            deposit: route(&self.deposit, "--deposit")?,
            withdraw: route(&self.withdraw, "--withdraw")?,
            balance: route(&self.balance, "--balance")?,
            body,
            headers,
            pointer: BalancePointer::parse(&self.pointer).map_err(anyhow::Error::msg)?,
            follow_redirects: false,
        })
    }
}

impl Api {
    /// Whether this is racebank's own API, whose `/stats` is worth reading.
    pub fn is_racebank(&self) -> bool {
        let racebank = ApiSpec::default();
        self.deposit == racebank.deposit
            && self.withdraw == racebank.withdraw
            && self.balance == racebank.balance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ApiSpec {
        ApiSpec {
            deposit: "POST /api/v1/accounts/{account}/deposits".parse().unwrap(),
            withdraw: "POST /api/v1/accounts/{account}/withdrawals"
                .parse()
                .unwrap(),
            balance: "GET /api/v1/accounts/{account}".parse().unwrap(),
            body: r#"{"amount_cents": {amount}, "account": "{account}"}"#.into(),
            account: Some("acc-7".into()),
            headers: vec!["Authorization: Bearer s3cret".parse().unwrap()],
            pointer: "/data/balance".into(),
        }
    }

    #[test]
    fn templates_are_filled_in_and_the_body_keeps_its_shape() {
        let api = spec().build().unwrap();
        assert_eq!(api.deposit.path, "/api/v1/accounts/acc-7/deposits");
        assert_eq!(api.balance.method, Method::GET);
        assert_eq!(
            api.body.render(250),
            Bytes::from_static(br#"{"amount_cents": 250, "account": "acc-7"}"#)
        );
        assert_eq!(api.headers[0].name, CONTENT_TYPE);
        assert_eq!(api.headers[1].value, "Bearer s3cret");
        assert!(!api.is_racebank());
        assert!(Api::default().is_racebank());
        assert_eq!(
            Api::default().body.render(5),
            Bytes::from_static(br#"{"amount":5}"#)
        );
    }

    #[test]
    fn the_balance_is_found_by_pointer_as_a_number_or_a_string() {
        let nested = BalancePointer::parse("/data/balance").unwrap();
        assert_eq!(nested.read(br#"{"data":{"balance":42}}"#), Some(42));
        assert_eq!(nested.read(br#"{"data":{"balance":"-7"}}"#), Some(-7));
        assert_eq!(nested.read(br#"{"data":{"balance":4.5}}"#), None);
        assert_eq!(nested.read(br#"{"balance":42}"#), None);
        let top = BalancePointer::parse("/balance").unwrap();
        assert_eq!(top, BalancePointer::TopLevel);
        assert_eq!(top.read(br#"{"balance":42}"#), Some(42));
        assert_eq!(
            BalancePointer::parse("").unwrap().read(b"42"),
            Some(42),
            "the empty pointer is the whole document"
        );
        assert!(BalancePointer::parse("data.balance").is_err());
    }

    #[test]
    fn a_template_that_cannot_work_is_refused_before_anything_is_sent() {
        let cases: Vec<(&str, ApiSpec)> = vec![
            (
                "no account",
                ApiSpec {
                    account: None,
                    ..spec()
                },
            ),
            (
                "no amount",
                ApiSpec {
                    body: "{}".into(),
                    ..spec()
                },
            ),
            (
                "two amounts",
                ApiSpec {
                    body: "[{amount},{amount}]".into(),
                    ..spec()
                },
            ),
            (
                "not JSON",
                ApiSpec {
                    body: "amount={amount}".into(),
                    ..spec()
                },
            ),
            (
                "other placeholder",
                ApiSpec {
                    deposit: "POST /{user}/deposit".parse().unwrap(),
                    ..spec()
                },
            ),
        ];
        for (case, spec) in cases {
            assert!(spec.build().is_err(), "{case}");
        }
        // A form body is fine when the content type says so.
        let form = ApiSpec {
            body: "amount={amount}".into(),
            headers: vec!["Content-Type: application/x-www-form-urlencoded"
                .parse()
                .unwrap()],
            ..spec()
        };
        assert!(form.build().is_ok());
        for bad in ["deposit", "POST deposit", "FO O /x", "POST /a b"] {
            assert!(bad.parse::<RouteTemplate>().is_err(), "{bad}");
        }
        for bad in ["NoColon", "Bad Name: x", "X: \u{1}"] {
            assert!(bad.parse::<Header>().is_err(), "{bad}");
        }
    }
}
