//! Java properties text and typed key tables over it.
//!
//! The same text format is a wire body (UPDATE_BROKER_CONFIG, GET_BROKER_CONFIG,
//! UPDATE_NAMESRV_CONFIG, GET_NAMESRV_CONFIG: spec §3.10–§3.11) and the format of
//! `broker.conf` / `namesrv.conf`. A [`ConfigKey`] table is the one place a server defines
//! its settings: the Java key, the doc line, whether it may change at runtime, and how to
//! read and print the value. Parsing a file, answering GET/UPDATE config requests and
//! generating the configuration docs all go through that table.
//!
//! ```
//! use karman_protocol::java_properties::{self, ConfigKey};
//! use karman_protocol::config_key;
//!
//! #[derive(Default)]
//! struct Conf { listen_port: u16, order_message_enable: bool }
//! const KEYS: &[ConfigKey<Conf>] = &[
//!     config_key!(Conf, "listenPort", listen_port, reloadable = false, "Port to listen on."),
//!     config_key!(Conf, "orderMessageEnable", order_message_enable, reloadable = true, "Order topics."),
//! ];
//! let mut conf = Conf::default();
//! let pairs = java_properties::parse("# comment\nlistenPort = 9876\nbogus=1\n");
//! let report = java_properties::apply(KEYS, &mut conf, &pairs, false).unwrap();
//! assert_eq!(conf.listen_port, 9876);
//! assert_eq!(report.unknown_keys, ["bogus"]);
//! assert!(java_properties::apply(KEYS, &mut conf, &java_properties::parse("listenPort=x"), false).is_err());
//! ```

use std::path::PathBuf;

/// Parses properties text: `key=value`, `key: value` or `key value`; `#`/`!` comments;
/// backslash line continuations; `\t \n \r \f \uXXXX` escapes. Later keys win when applied;
/// the order of the text is kept.
pub fn parse(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut logical = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if logical.is_empty()
            && (trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!'))
        {
            continue;
        }
        logical.push_str(trimmed);
        if ends_with_continuation(&logical) {
            logical.pop();
            if lines.clone().next().is_some() {
                continue;
            }
        }
        if let Some(pair) = split_pair(&logical) {
            pairs.push(pair);
        }
        logical.clear();
    }
    pairs
}

/// An odd number of trailing backslashes continues the line.
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

fn split_pair(line: &str) -> Option<(String, String)> {
    let mut key_end = line.len();
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' | '\u{c}' => {
                key_end = i;
                break;
            }
            _ => {}
        }
    }
    let key = unescape(line.get(..key_end)?);
    let rest = line
        .get(key_end..)
        .unwrap_or("")
        .trim_start_matches([' ', '\t', '\u{c}']);
    let rest = rest
        .strip_prefix(['=', ':'])
        .unwrap_or(rest)
        .trim_start_matches([' ', '\t', '\u{c}']);
    (!key.is_empty()).then(|| (key, unescape(rest)))
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Prints `key=value` lines (no escaping beyond what keeps one entry per line).
pub fn format<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        out.push_str(key);
        out.push('=');
        out.push_str(&value.replace('\\', "\\\\").replace('\n', "\\n"));
        out.push('\n');
    }
    out
}

/// A value a config key can hold: parsed from and printed to properties text.
pub trait ConfigValue: Sized {
    fn parse(text: &str) -> Result<Self, String>;
    fn render(&self) -> String;
}

macro_rules! number_value {
    ($($ty:ty),*) => {$(
        impl ConfigValue for $ty {
            fn parse(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|_| format!("expected a number of type {}, found {text:?}", stringify!($ty)))
            }
            fn render(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

number_value!(i32, i64, u16, u32, u64, usize, f64);

impl ConfigValue for bool {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            t if t.eq_ignore_ascii_case("true") => Ok(true),
            t if t.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(format!("expected true or false, found {text:?}")),
        }
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

impl ConfigValue for String {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text.trim().to_owned())
    }
    fn render(&self) -> String {
        self.clone()
    }
}

impl ConfigValue for std::net::IpAddr {
    fn parse(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("expected an IP address, found {text:?}"))
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

impl ConfigValue for PathBuf {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("expected a path, found nothing".into());
        }
        Ok(PathBuf::from(text))
    }
    fn render(&self) -> String {
        self.display().to_string()
    }
}

/// One setting: its Java key, documentation, whether it may change while running, and
/// how to read and print it.
pub struct ConfigKey<C> {
    pub name: &'static str,
    pub doc: &'static str,
    pub reloadable: bool,
    pub get: fn(&C) -> String,
    pub set: fn(&mut C, &str) -> Result<(), String>,
}

impl<C> std::fmt::Debug for ConfigKey<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigKey")
            .field("name", &self.name)
            .field("reloadable", &self.reloadable)
            .finish()
    }
}

/// Builds a [`ConfigKey`] for a field (or nested field path) whose type implements
/// [`ConfigValue`].
#[macro_export]
macro_rules! config_key {
    ($ty:ty, $name:literal, $($field:ident).+, reloadable = $reloadable:expr, $doc:literal) => {
        $crate::java_properties::ConfigKey::<$ty> {
            name: $name,
            doc: $doc,
            reloadable: $reloadable,
            get: |config: &$ty| $crate::java_properties::ConfigValue::render(&config.$($field).+),
            set: |config: &mut $ty, text: &str| {
                config.$($field).+ = $crate::java_properties::ConfigValue::parse(text)?;
                Ok(())
            },
        }
    };
}

/// A value a table refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("config key `{key}` has a bad value: {reason}")]
    BadValue { key: String, reason: String },
    #[error("config key `{key}` cannot change while running; edit the config file and restart")]
    NotReloadable { key: String },
}

/// What applying a set of pairs did besides setting values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Keys the table does not know, in text order (worth a warning each).
    pub unknown_keys: Vec<String>,
    /// Keys that were set.
    pub applied_keys: Vec<String>,
}

/// Applies `pairs` to `config` through `table`. With `only_reloadable`, a known key that
/// cannot change at runtime is an error and nothing is applied.
pub fn apply<C>(
    table: &[ConfigKey<C>],
    config: &mut C,
    pairs: &[(String, String)],
    only_reloadable: bool,
) -> Result<ApplyReport, ConfigError> {
    let mut report = ApplyReport::default();
    if only_reloadable {
        for (key, _) in pairs {
            if table.iter().any(|k| k.name == key && !k.reloadable) {
                return Err(ConfigError::NotReloadable { key: key.clone() });
            }
        }
    }
    for (key, value) in pairs {
        match table.iter().find(|k| k.name == key) {
            Some(entry) => {
                (entry.set)(config, value).map_err(|reason| ConfigError::BadValue {
                    key: key.clone(),
                    reason,
                })?;
                report.applied_keys.push(key.clone());
            }
            None => report.unknown_keys.push(key.clone()),
        }
    }
    Ok(report)
}

/// Prints every key of the table with its current value.
pub fn render<C>(table: &[ConfigKey<C>], config: &C) -> String {
    format(table.iter().map(|k| (k.name, (k.get)(config))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_java_accepts() {
        let text = "# c\n! c\n  a=1\nb : 2\nc 3\nd=\\\n  continued\ne=tab\\there\nf=\\u0041\n\ng\n";
        let pairs = parse(text);
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("a"), Some("1"));
        assert_eq!(get("b"), Some("2"));
        assert_eq!(get("c"), Some("3"));
        assert_eq!(get("d"), Some("continued"));
        assert_eq!(get("e"), Some("tab\there"));
        assert_eq!(get("f"), Some("A"));
        assert_eq!(get("g"), Some(""));
    }

    #[test]
    fn a_broker_conf_parses() {
        let text = "brokerClusterName = DefaultCluster\nbrokerName = broker-a\nbrokerId = 0\ndeleteWhen = 04\nfileReservedTime = 48\nbrokerRole = ASYNC_MASTER\nflushDiskType = ASYNC_FLUSH\n";
        let pairs = parse(text);
        assert_eq!(pairs.len(), 7);
        assert_eq!(pairs[3], ("deleteWhen".to_string(), "04".to_string()));
    }

    #[test]
    fn format_round_trips_through_parse() {
        let text = format([("a", "1".to_string()), ("path", "C:\\x".to_string())]);
        assert_eq!(
            parse(&text),
            vec![("a".into(), "1".into()), ("path".into(), "C:\\x".into())]
        );
    }
}
