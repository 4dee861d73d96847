//! `--config api.toml`: the same settings as the flags, in a file, for CI.
//!
//! Each key is a long flag's name (`max-error-rate` or `max_error_rate`); a list repeats the flag
//! (`header = ["Authorization: Bearer x"]`, `url = [...]`), `true` sets a switch. The file is
//! turned into flags placed before the ones typed, and a flag typed on the command line replaces
//! the file's setting of it (`bank`'s URLs typed without a flag replace its `url`), so the file cannot disagree with `--help`: clap checks both the same
//! way.
//!
//! ```toml
//! url = "http://127.0.0.1:8080"
//! header = ["Authorization: Bearer s3cret"]
//! deposit = "POST /api/v1/accounts/{account}/deposits"
//! body = '{"amount_cents": {amount}}'
//! account = "42"
//! balance-pointer = "/data/balance"
//! max-error-rate = 0.01
//! ```

use std::ffi::OsString;

use clap::CommandFactory;

use crate::cli::opts::Cli;

/// The subcommands, which must come first on the command line.
const SUBCOMMANDS: [&str; 4] = ["run", "burst", "demo", "bank"];

/// `args` (the program name first) with the settings of the `--config` file, if one is named,
/// inserted as flags; an error says what is wrong with the file in one line.
pub fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(path) = config_path(&args) else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read the config file {path}: {error}"))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|error| format!("{path} is not valid TOML: {}", one_line(&error.to_string())))?;
    let subcommand = args
        .get(1)
        .and_then(|arg| arg.to_str())
        .filter(|arg| SUBCOMMANDS.contains(arg));
    let root = Cli::command();
    let command = match subcommand {
        Some(name) => root
            .find_subcommand(name)
            .cloned()
            .ok_or_else(|| format!("no subcommand {name}"))?,
        None => root,
    };
    let typed: Vec<String> = args
        .iter()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let mut flags = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let Some(arg) = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(long.as_str()))
        else {
            return Err(format!(
                "{path}: unknown setting `{key}` (settings are the long flags of --help)"
            ));
        };
        if long == "config" {
            return Err(format!("{path}: a config file cannot name another"));
        }
        let short = arg.get_short().map(|short| format!("-{short}"));
        let overridden = typed.iter().any(|typed| {
            typed == &format!("--{long}")
                || typed.starts_with(&format!("--{long}="))
                || short
                    .as_ref()
                    .is_some_and(|short| typed.starts_with(short.as_str()))
        });
        // `bank URL...` names its URLs without a flag: typed, they replace the file's `url`.
        let typed_urls = subcommand == Some("bank")
            && long == "url"
            && typed.iter().any(|typed| typed.starts_with("http://"));
        if overridden || typed_urls {
            continue;
        }
        let takes_value = arg.get_action().takes_values();
        flags.extend(as_flags(&path, key, &long, value, takes_value)?);
    }
    let at = if subcommand.is_some() { 2 } else { 1 };
    let mut expanded = args;
    expanded.splice(at..at, flags.into_iter().map(OsString::from));
    Ok(expanded)
}

/// The flags of one setting: `--name` for `true`, `--name=value` for each value.
fn as_flags(
    path: &str,
    key: &str,
    long: &str,
    value: &toml::Value,
    takes_value: bool,
) -> Result<Vec<String>, String> {
    let values = match value {
        toml::Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    let mut flags = Vec::new();
    for value in values {
        match (value, takes_value) {
            (toml::Value::Boolean(true), false) => flags.push(format!("--{long}")),
            (toml::Value::Boolean(false), false) => {}
            (toml::Value::String(text), true) => flags.push(format!("--{long}={text}")),
            (toml::Value::Integer(number), true) => flags.push(format!("--{long}={number}")),
            (toml::Value::Float(number), true) => flags.push(format!("--{long}={number}")),
            (other, _) => {
                return Err(format!(
                    "{path}: `{key}` cannot be a{} {}",
                    if other.type_str().starts_with(['a', 'i']) {
                        "n"
                    } else {
                        ""
                    },
                    other.type_str()
                ))
            }
        }
    }
    Ok(flags)
}

/// The value of `--config FILE` or `--config=FILE`.
fn config_path(args: &[OsString]) -> Option<String> {
    let mut args = args.iter().map(|arg| arg.to_string_lossy());
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(std::borrow::Cow::into_owned);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(path.to_string());
        }
    }
    None
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn with_file(toml: &str, args: &[&str]) -> Result<Vec<String>, String> {
        let path = std::env::temp_dir().join(format!(
            "racebank-load-config-{}-{}.toml",
            std::process::id(),
            args.len()
        ));
        std::fs::write(&path, toml).unwrap();
        let mut argv: Vec<OsString> = vec!["racebank-load".into()];
        argv.extend(args.iter().map(OsString::from));
        argv.push("--config".into());
        argv.push(path.clone().into());
        let expanded = expand(argv);
        let _ = std::fs::remove_file(&path);
        expanded.map(|args| {
            args.into_iter()
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect()
        })
    }

    #[test]
    fn the_file_gives_the_same_settings_as_the_flags_and_typed_flags_win() {
        let toml = r#"
            url = ["http://127.0.0.1:8080", "http://127.0.0.1:8081"]
            header = ["Authorization: Bearer s3cret"]
            deposit = "POST /api/{account}/deposits"
            account = "7"
            max_error_rate = 0.25
            concurrency = 8
            json = true
        "#;
        let args = with_file(toml, &["-c", "3"]).unwrap();
        let cli = Cli::try_parse_from(&args).unwrap();
        let load = cli.run.to_load().unwrap();
        assert_eq!(load.targets.len(), 2);
        assert_eq!(load.api.deposit.path, "/api/7/deposits");
        assert_eq!(load.max_error_rate, Some(0.25));
        assert_eq!(load.concurrency, 3, "the typed -c wins");
        assert!(cli.run.json);
        assert!(load.api.headers.iter().any(|h| h.value == "Bearer s3cret"));
    }

    #[test]
    fn the_file_applies_to_a_subcommand_too() {
        let args = with_file("rounds = 3\nrequests = 4", &["burst"]).unwrap();
        let cli = Cli::try_parse_from(&args).unwrap();
        let Some(crate::cli::opts::Command::Burst(burst)) = cli.command else {
            panic!("{args:?}");
        };
        assert_eq!((burst.rounds, burst.requests), (3, 4));
    }

    #[test]
    fn a_bank_takes_its_replicas_from_the_file_as_run_does() {
        let toml = r#"url = ["http://127.0.0.1:8080", "http://127.0.0.1:8081"]"#;
        let args = with_file(toml, &["bank", "--no-progress", "--json"]).unwrap();
        let cli = Cli::try_parse_from(&args).unwrap();
        let Some(crate::cli::opts::Command::Bank(bank)) = cli.command else {
            panic!("{args:?}");
        };
        let targets = bank.to_bank().unwrap().targets;
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[1].as_str(), "http://127.0.0.1:8081/");

        let typed = ["bank", "http://127.0.0.1:9000", "--no-progress", "--json"];
        let args = with_file(toml, &typed).unwrap();
        let Some(crate::cli::opts::Command::Bank(bank)) =
            Cli::try_parse_from(&args).unwrap().command
        else {
            panic!("{args:?}");
        };
        let targets = bank.to_bank().unwrap().targets;
        assert_eq!(targets.len(), 1, "the typed URL replaces the file's");
        assert_eq!(targets[0].as_str(), "http://127.0.0.1:9000/");
    }

    #[test]
    fn a_wrong_file_is_one_clear_line() {
        for (toml, says) in [
            ("colour = 1", "unknown setting `colour`"),
            ("url = ", "not valid TOML"),
            ("json = 3", "`json` cannot be an integer"),
        ] {
            let error = with_file(toml, &[]).unwrap_err();
            assert!(error.contains(says), "{toml}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }
}
