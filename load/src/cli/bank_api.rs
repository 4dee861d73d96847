//! The flags of `bank` that describe a bank API other than racebank's (also config-file keys).

use clap::Args;

use crate::plan::api::RouteTemplate;
use crate::plan::bank_api::{
    BankApiSpec, DEFAULT_SETUP_BODY, DEFAULT_TRANSFER_BODY, DEFAULT_WITHDRAW_BODY,
};

/// Routes, bodies and pointers of the bank under test (racebank's by default).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Your own bank API")]
pub struct BankApiArgs {
    /// The transfer route: `METHOD /path`, the path may name {from} and {to}.
    #[arg(long, default_value = "POST /transfers", value_name = "METHOD /PATH")]
    pub transfer: RouteTemplate,

    /// The transfer body, naming {from}, {to} and {amount}.
    #[arg(long, default_value = DEFAULT_TRANSFER_BODY)]
    pub transfer_body: String,

    /// write-skew, double-spend: the withdrawal route; the path may name {account}.
    #[arg(
        long,
        default_value = "POST /accounts/{account}/withdraw",
        value_name = "METHOD /PATH"
    )]
    pub withdraw: RouteTemplate,

    /// The withdrawal body, naming {account} and {amount}.
    #[arg(long, default_value = DEFAULT_WITHDRAW_BODY)]
    pub withdraw_body: String,

    /// In a withdrawal's 2xx answer, the balance left; an answer without one leaves it unknown.
    #[arg(long, default_value = "/balance", value_name = "POINTER")]
    pub withdraw_balance_pointer: String,

    /// The route that reads every balance.
    #[arg(long, default_value = "GET /accounts", value_name = "METHOD /PATH")]
    pub read_all: RouteTemplate,

    /// In the read-all answer, the list (or map of id to entry) of accounts (RFC 6901).
    #[arg(long, default_value = "/accounts", value_name = "POINTER")]
    pub accounts_pointer: String,

    /// In each entry of that list, the account's id.
    #[arg(long, default_value = "/id", value_name = "POINTER")]
    pub id_pointer: String,

    /// In each entry (a list's, or a map's value), the balance; "" when the entry is the balance.
    #[arg(long, default_value = "/balance", value_name = "POINTER")]
    pub balance_pointer: String,

    /// The route that opens the bank; naming {account}, it is sent once per account.
    #[arg(long, default_value = "POST /bank/reset", value_name = "METHOD /PATH")]
    pub setup: RouteTemplate,

    /// The set-up body: {balances} (a JSON object of id to opening balance, those not 0), or
    /// {account} and {balance} for one request per account.
    #[arg(long, default_value = DEFAULT_SETUP_BODY)]
    pub setup_body: String,
}

impl BankApiArgs {
    /// The API these flags describe, before it is checked.
    pub fn spec(&self) -> BankApiSpec {
        BankApiSpec {
            transfer: self.transfer.clone(),
            transfer_body: self.transfer_body.clone(),
            withdraw: self.withdraw.clone(),
            withdraw_body: self.withdraw_body.clone(),
            withdraw_balance_pointer: self.withdraw_balance_pointer.clone(),
            read: self.read_all.clone(),
            accounts_pointer: self.accounts_pointer.clone(),
            id_pointer: self.id_pointer.clone(),
            balance_pointer: self.balance_pointer.clone(),
            setup: self.setup.clone(),
            setup_body: self.setup_body.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::opts::{Cli, Command};

    #[test]
    fn the_flags_defaults_are_racebanks_own_bank() {
        let cli = Cli::try_parse_from(["racebank-load", "bank"]).expect("bank's defaults");
        let Some(Command::Bank(opts)) = cli.command else {
            panic!("expected bank");
        };
        assert_eq!(opts.api.spec(), BankApiSpec::default());
        assert!(opts.api.spec().build().expect("racebank's bank").racebank);
    }
}
