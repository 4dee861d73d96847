//! The shape of a bank API for `bank`: the transfer, withdrawal, read-all and set-up routes, their
//! body templates, and JSON pointers to the balances in a read-all answer and in a withdrawal's.
//!
//! The defaults are racebank's own bank ([`racebank::wire::bank`]). Another bank describes itself
//! with routes (`POST /v2/moves`, the path may name `{from}` and `{to}`), a transfer body
//! (`{"src": "{from}", "dst": "{to}", "cents": {amount}}`), a read-all route and pointers: to the
//! list (or map) of accounts in its answer (`/data/accts`), and in each entry to its id (`/name`)
//! and balance (`/cents`). In a map the key is the id and `--balance-pointer` points inside the
//! value (`""`: the value is the balance). The set-up opens the bank: one request naming every
//! opening balance that is not 0 (`{balances}`, a JSON object of id to balance; the others open
//! at 0, as racebank's reset does), or, when the route or body names
//! `{account}`, one request per account with `{balance}`. The rounds of `write-skew` and
//! `double-spend` withdraw (`POST /v2/accts/{account}/debits`, a body naming `{account}` and
//! `{amount}`) and find the balance left in the 2xx answer (`--withdraw-balance-pointer`), where a
//! bank that answers none leaves it unknown.

use std::fmt::Write as _;

use anyhow::{bail, Context};
use bytes::Bytes;
use racebank::wire::bank::{paths, AccountsBody};
use serde_json::Value;

use crate::plan::api::{BalancePointer, RouteTemplate};

/// racebank's transfer body.
pub(crate) const DEFAULT_TRANSFER_BODY: &str = r#"{"from":"{from}","to":"{to}","amount":{amount}}"#;
/// racebank's withdrawal body.
pub(crate) const DEFAULT_WITHDRAW_BODY: &str = r#"{"amount":{amount}}"#;
/// racebank's reset body.
pub(crate) const DEFAULT_SETUP_BODY: &str = r#"{"balances":{balances}}"#;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    From,
    To,
    Amount,
    Account,
    Balance,
    Balances,
}

/// A route path or body with placeholders, split once so that rendering is a few copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// The values a template may name.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fill<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub amount: i64,
    pub account: &'a str,
    pub balance: i64,
    pub balances: &'a str,
}

impl Template {
    /// Splits `text` at the placeholders `allowed` names; any other `{word}` is an error.
    fn parse(text: &str, allowed: &[&str], what: &str) -> anyhow::Result<Self> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while let Some(open) = rest.find('{') {
            let after = &rest[open..];
            let word_end = after[1..]
                .find(|c: char| !c.is_ascii_alphabetic())
                .map(|n| n + 1);
            let placeholder = word_end
                .filter(|&end| after[end..].starts_with('}') && end > 1)
                .map(|end| &after[..=end]);
            literal.push_str(&rest[..open]);
            match placeholder {
                Some(name) if allowed.contains(&name) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(match name {
                        "{from}" => Piece::From,
                        "{to}" => Piece::To,
                        "{amount}" => Piece::Amount,
                        "{account}" => Piece::Account,
                        "{balance}" => Piece::Balance,
                        _ => Piece::Balances,
                    });
                    rest = &after[name.len()..];
                }
                Some(name)
                    if [
                        "{from}",
                        "{to}",
                        "{amount}",
                        "{account}",
                        "{balance}",
                        "{balances}",
                    ]
                    .contains(&name) =>
                {
                    bail!(
                        "{what} `{text}` names {name}, which it cannot (it may name {})",
                        allowed.join(" ")
                    )
                }
                _ => {
                    literal.push('{');
                    rest = &after[1..];
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    fn names(&self, piece: &Piece) -> bool {
        self.pieces.contains(piece)
    }

    /// Whether the template names no placeholder at all.
    fn is_fixed(&self) -> bool {
        self.pieces
            .iter()
            .all(|piece| matches!(piece, Piece::Text(_)))
    }

    /// The text with `fill`'s values in place.
    pub(crate) fn render(&self, fill: &Fill<'_>) -> String {
        let mut out = String::with_capacity(64);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::From => out.push_str(fill.from),
                Piece::To => out.push_str(fill.to),
                Piece::Amount => {
                    let _ = write!(out, "{}", fill.amount);
                }
                Piece::Account => out.push_str(fill.account),
                Piece::Balance => {
                    let _ = write!(out, "{}", fill.balance);
                }
                Piece::Balances => out.push_str(fill.balances),
            }
        }
        out
    }
}

/// A route whose path is a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The method.
    pub method: hyper::Method,
    /// The path.
    pub path: Template,
}

impl Route {
    fn new(route: &RouteTemplate, allowed: &[&str], what: &str) -> anyhow::Result<Self> {
        let path = Template::parse(&route.path, allowed, what)?;
        let sample = path.render(&Fill {
            from: "0",
            to: "1",
            account: "0",
            ..Fill::default()
        });
        if sample.contains(['{', '}']) {
            bail!(
                "{what} `{}` has a placeholder it cannot fill (it may name {})",
                route.path,
                allowed.join(" ")
            );
        }
        hyper::Uri::try_from(sample.as_str())
            .with_context(|| format!("{what} `{}` is not a valid request path", route.path))?;
        Ok(Route {
            method: route.method.clone(),
            path,
        })
    }

    /// The path, when it names no placeholder.
    pub(crate) fn fixed(&self) -> Option<String> {
        self.path
            .is_fixed()
            .then(|| self.path.render(&Fill::default()))
    }
}

/// Where the balances are in a read-all answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balances {
    /// racebank's `{"accounts": [{"id", "balance"}]}`: parsed into a struct, no JSON tree.
    Racebank,
    /// Anywhere else.
    Pointers {
        /// To the list or the map of accounts.
        accounts: String,
        /// In a list's entry, to its id.
        id: String,
        /// In an entry (a list's, or a map's value), to its balance.
        balance: String,
    },
}

/// How the bank is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetUp {
    /// The route.
    pub route: Route,
    /// The body.
    pub body: Template,
    /// One request per account (the route or body names `{account}`), else one for all.
    pub per_account: bool,
}

/// Everything about a bank API that is not the URL and the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankApi {
    /// The transfer route.
    pub transfer: Route,
    /// The transfer body.
    pub transfer_body: Template,
    /// The withdrawal route of the rounds (`write-skew`, `double-spend`).
    pub withdraw: Route,
    /// The withdrawal body.
    pub withdraw_body: Template,
    /// Where a withdrawal's 2xx answer has the balance left.
    pub withdrawn_balance: BalancePointer,
    /// The route that reads every balance.
    pub read: Route,
    /// Where the balances are in its answer.
    pub balances: Balances,
    /// How the bank is opened.
    pub setup: SetUp,
    /// Whether this is racebank's own bank, whose `/stats` is worth reading.
    pub racebank: bool,
}

/// The bank API as flags or the config file give it, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankApiSpec {
    /// `--transfer`.
    pub transfer: RouteTemplate,
    /// `--transfer-body`.
    pub transfer_body: String,
    /// `--withdraw`.
    pub withdraw: RouteTemplate,
    /// `--withdraw-body`.
    pub withdraw_body: String,
    /// `--withdraw-balance-pointer`.
    pub withdraw_balance_pointer: String,
    /// `--read-all`.
    pub read: RouteTemplate,
    /// `--accounts-pointer`.
    pub accounts_pointer: String,
    /// `--id-pointer`.
    pub id_pointer: String,
    /// `--balance-pointer`.
    pub balance_pointer: String,
    /// `--setup`.
    pub setup: RouteTemplate,
    /// `--setup-body`.
    pub setup_body: String,
}

impl Default for BankApiSpec {
    fn default() -> Self {
        let route = |method, path: &str| RouteTemplate {
            method,
            path: path.to_string(),
        };
        BankApiSpec {
            transfer: route(hyper::Method::POST, paths::TRANSFERS),
            transfer_body: DEFAULT_TRANSFER_BODY.to_string(),
            withdraw: route(
                hyper::Method::POST,
                &paths::account("{account}", "withdraw"),
            ),
            withdraw_body: DEFAULT_WITHDRAW_BODY.to_string(),
            withdraw_balance_pointer: "/balance".to_string(),
            read: route(hyper::Method::GET, paths::ACCOUNTS),
            accounts_pointer: "/accounts".to_string(),
            id_pointer: "/id".to_string(),
            balance_pointer: "/balance".to_string(),
            setup: route(hyper::Method::POST, paths::RESET),
            setup_body: DEFAULT_SETUP_BODY.to_string(),
        }
    }
}

impl Default for BankApi {
    /// racebank's own bank.
    fn default() -> Self {
        BankApiSpec::default()
            .build()
            .expect("racebank's own bank is a valid bank API")
    }
}

fn pointer(text: &str, what: &str) -> anyhow::Result<String> {
    if !text.is_empty() && !text.starts_with('/') {
        bail!("{what} `{text}` is not a JSON pointer: it starts with / (e.g. /data/accounts)");
    }
    Ok(text.to_string())
}

impl BankApiSpec {
    /// Checks the templates and pointers.
    pub fn build(&self) -> anyhow::Result<BankApi> {
        let transfer = Route::new(&self.transfer, &["{from}", "{to}"], "--transfer")?;
        let transfer_body = Template::parse(
            &self.transfer_body,
            &["{from}", "{to}", "{amount}"],
            "--transfer-body",
        )?;
        check_json(&transfer_body, "--transfer-body")?;
        let withdraw = Route::new(&self.withdraw, &["{account}"], "--withdraw")?;
        let withdraw_body = Template::parse(
            &self.withdraw_body,
            &["{account}", "{amount}"],
            "--withdraw-body",
        )?;
        check_json(&withdraw_body, "--withdraw-body")?;
        let withdrawn_balance = BalancePointer::parse(&self.withdraw_balance_pointer)
            .map_err(|error| anyhow::anyhow!("--withdraw-balance-pointer {error}"))?;
        let read = Route::new(&self.read, &[], "--read-all")?;
        let setup_route = Route::new(&self.setup, &["{account}"], "--setup")?;
        let per_account = setup_route.path.names(&Piece::Account);
        let allowed: &[&str] = if per_account {
            &["{account}", "{balance}"]
        } else {
            &["{account}", "{balance}", "{balances}"]
        };
        let setup_body = Template::parse(&self.setup_body, allowed, "--setup-body")?;
        let per_account = per_account || setup_body.names(&Piece::Account);
        if per_account && setup_body.names(&Piece::Balances) {
            bail!("--setup-body names both {{account}} and {{balances}}: one request per account, or one for all");
        }
        check_json(&setup_body, "--setup-body")?;
        let defaults = BankApiSpec::default();
        let racebank_read = self.read == defaults.read
            && self.accounts_pointer == defaults.accounts_pointer
            && self.id_pointer == defaults.id_pointer
            && self.balance_pointer == defaults.balance_pointer;
        let balances = if racebank_read {
            Balances::Racebank
        } else {
            Balances::Pointers {
                accounts: pointer(&self.accounts_pointer, "--accounts-pointer")?,
                id: pointer(&self.id_pointer, "--id-pointer")?,
                balance: pointer(&self.balance_pointer, "--balance-pointer")?,
            }
        };
        Ok(BankApi {
            transfer,
            transfer_body,
            withdraw,
            withdraw_body,
            withdrawn_balance,
            read,
            balances,
            setup: SetUp {
                route: setup_route,
                body: setup_body,
                per_account,
            },
            racebank: *self == defaults,
        })
    }
}

/// A body template that renders as JSON (an empty body is fine).
fn check_json(template: &Template, what: &str) -> anyhow::Result<()> {
    let sample = template.render(&Fill {
        from: "0",
        to: "1",
        amount: 1,
        account: "0",
        balance: 1,
        balances: r#"{"0":1}"#,
    });
    if !sample.trim().is_empty() && serde_json::from_str::<Value>(&sample).is_err() {
        bail!("{what} `{sample}` (its placeholders filled in) is not JSON");
    }
    Ok(())
}

impl BankApi {
    /// The body of a transfer.
    #[inline]
    pub(crate) fn transfer_body(&self, from: &str, to: &str, amount: i64) -> Bytes {
        Bytes::from(self.transfer_body.render(&Fill {
            from,
            to,
            amount,
            ..Fill::default()
        }))
    }

    /// The path and body of a withdrawal of `amount` from `account`.
    pub(crate) fn withdrawal(&self, account: &str, amount: i64) -> (String, Bytes) {
        let fill = Fill {
            amount,
            account,
            ..Fill::default()
        };
        (
            self.withdraw.path.render(&fill),
            Bytes::from(self.withdraw_body.render(&fill)),
        )
    }

    /// The balances of a read-all answer, each with its id, in the answer's order; `None` when
    /// the answer holds no such list.
    pub(crate) fn read_all(&self, body: &[u8]) -> Option<Vec<(String, i64)>> {
        match &self.balances {
            Balances::Racebank => {
                let read: AccountsBody = serde_json::from_slice(body).ok()?;
                Some(
                    read.accounts
                        .into_iter()
                        .map(|account| (account.id, account.balance))
                        .collect(),
                )
            }
            Balances::Pointers {
                accounts,
                id,
                balance,
            } => {
                let document: Value = serde_json::from_slice(body).ok()?;
                match document.pointer(accounts)? {
                    Value::Array(entries) => entries
                        .iter()
                        .map(|entry| {
                            Some((
                                as_id(entry.pointer(id)?)?,
                                as_money(entry.pointer(balance)?)?,
                            ))
                        })
                        .collect(),
                    Value::Object(map) => map
                        .iter()
                        .map(|(key, entry)| Some((key.clone(), as_money(entry.pointer(balance)?)?)))
                        .collect(),
                    _ => None,
                }
            }
        }
    }

    /// The set-up requests: (path, body) each. `{balances}` names the accounts that do not open
    /// at 0.
    pub(crate) fn setup_requests(&self, ids: &[String], openings: &[i64]) -> Vec<(String, String)> {
        if self.setup.per_account {
            return ids
                .iter()
                .zip(openings)
                .map(|(id, &balance)| {
                    let fill = Fill {
                        account: id,
                        balance,
                        ..Fill::default()
                    };
                    (
                        self.setup.route.path.render(&fill),
                        self.setup.body.render(&fill),
                    )
                })
                .collect();
        }
        let map: serde_json::Map<String, Value> = ids
            .iter()
            .zip(openings)
            .filter(|(_, &balance)| balance != 0)
            .map(|(id, &balance)| (id.clone(), Value::from(balance)))
            .collect();
        let balances = Value::Object(map).to_string();
        let fill = Fill {
            balances: &balances,
            ..Fill::default()
        };
        vec![(
            self.setup.route.path.render(&fill),
            self.setup.body.render(&fill),
        )]
    }
}

fn as_id(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn as_money(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other() -> BankApiSpec {
        BankApiSpec {
            transfer: "PUT /v2/accts/{from}/moves".parse().unwrap(),
            transfer_body: r#"{"dst": "{to}", "cents": {amount}}"#.into(),
            withdraw: "POST /v2/accts/{account}/debits".parse().unwrap(),
            withdraw_body: r#"{"acct": "{account}", "cents": {amount}}"#.into(),
            withdraw_balance_pointer: "/data/acct/cents".into(),
            read: "GET /v2/accts".parse().unwrap(),
            accounts_pointer: "/data/accts".into(),
            id_pointer: "/name".into(),
            balance_pointer: "/cents".into(),
            setup: "PUT /v2/accts/{account}".parse().unwrap(),
            setup_body: r#"{"cents": {balance}}"#.into(),
        }
    }

    #[test]
    fn racebank_is_the_default_and_renders_as_before() {
        let api = BankApi::default();
        assert!(api.racebank);
        assert_eq!(api.balances, Balances::Racebank);
        assert_eq!(
            api.transfer_body("0", "1", 5),
            Bytes::from_static(br#"{"from":"0","to":"1","amount":5}"#)
        );
        assert_eq!(api.transfer.fixed().as_deref(), Some("/transfers"));
        assert_eq!(
            api.withdrawal("alice", 60),
            (
                "/accounts/alice/withdraw".to_string(),
                Bytes::from_static(br#"{"amount":60}"#)
            )
        );
        assert_eq!(api.withdrawn_balance.read(br#"{"balance":-10}"#), Some(-10));
        let setup = api.setup_requests(&["0".into(), "1".into()], &[100, 0]);
        assert_eq!(
            setup,
            vec![(
                "/bank/reset".to_string(),
                r#"{"balances":{"0":100}}"#.to_string()
            )]
        );
        let read = br#"{"accounts":[{"id":"1","balance":4}],"total":4,"read":"rows"}"#;
        assert_eq!(api.read_all(read), Some(vec![("1".to_string(), 4)]));
    }

    #[test]
    fn another_bank_is_found_by_its_routes_bodies_and_pointers() {
        let api = other().build().unwrap();
        assert!(!api.racebank);
        assert_eq!(api.transfer.fixed(), None);
        assert_eq!(
            api.transfer.path.render(&Fill {
                from: "a",
                ..Fill::default()
            }),
            "/v2/accts/a/moves"
        );
        assert_eq!(
            api.transfer_body("a", "b", 3),
            Bytes::from_static(br#"{"dst": "b", "cents": 3}"#)
        );
        assert_eq!(
            api.withdrawal("h1", 60),
            (
                "/v2/accts/h1/debits".to_string(),
                Bytes::from_static(br#"{"acct": "h1", "cents": 60}"#)
            )
        );
        let debited = br#"{"data": {"acct": {"name": "h1", "cents": "-10"}}}"#;
        assert_eq!(api.withdrawn_balance.read(debited), Some(-10));
        assert_eq!(api.withdrawn_balance.read(br#"{"ok": true}"#), None);
        let setup = api.setup_requests(&["a".into(), "b".into()], &[7, 0]);
        assert_eq!(
            setup[1],
            ("/v2/accts/b".to_string(), r#"{"cents": 0}"#.to_string())
        );
        let list =
            br#"{"data": {"accts": [{"name": "0", "cents": 40}, {"name": 1, "cents": "-2"}]}}"#;
        assert_eq!(
            api.read_all(list),
            Some(vec![("0".into(), 40), ("1".into(), -2)])
        );
        assert_eq!(
            api.read_all(br#"{"data": {"accts": [{"name": "0"}]}}"#),
            None
        );
        let map = BankApiSpec {
            accounts_pointer: "/balances".into(),
            balance_pointer: String::new(),
            ..other()
        }
        .build()
        .unwrap();
        assert_eq!(
            map.read_all(br#"{"balances": {"x": 5}}"#),
            Some(vec![("x".into(), 5)])
        );
    }

    #[test]
    fn a_template_that_cannot_work_is_refused_before_anything_is_sent() {
        let cases = [
            (
                "a placeholder of another route",
                BankApiSpec {
                    read: "GET /accts/{from}".parse().unwrap(),
                    ..other()
                },
            ),
            (
                "an unknown placeholder",
                BankApiSpec {
                    transfer: "POST /{user}/moves".parse().unwrap(),
                    ..other()
                },
            ),
            (
                "a withdrawal naming a transfer's placeholder",
                BankApiSpec {
                    withdraw: "POST /v2/accts/{from}/debits".parse().unwrap(),
                    ..other()
                },
            ),
            (
                "a withdrawal body naming the set-up's balance",
                BankApiSpec {
                    withdraw_body: r#"{"cents": {balance}}"#.into(),
                    ..other()
                },
            ),
            (
                "a withdrawal's pointer without /",
                BankApiSpec {
                    withdraw_balance_pointer: "data.acct.cents".into(),
                    ..other()
                },
            ),
            (
                "a body that is not JSON",
                BankApiSpec {
                    transfer_body: "from={from}".into(),
                    ..other()
                },
            ),
            (
                "balances in a per-account set-up",
                BankApiSpec {
                    setup_body: "{balances}".into(),
                    ..other()
                },
            ),
            (
                "a pointer without /",
                BankApiSpec {
                    accounts_pointer: "data.accts".into(),
                    ..other()
                },
            ),
        ];
        for (case, spec) in cases {
            let error = format!("{:#}", spec.build().expect_err(case));
            assert!(!error.contains('\n'), "{case}: {error}");
        }
    }
}
