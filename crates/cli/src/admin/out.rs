//! How admin output reaches the person or the script: aligned tables and key/value blocks
//! as text, or one JSON document with `--json`. Times are local (the `TZ` variable is
//! honoured), to the millisecond.

use std::io::Write as _;

use chrono::TimeZone as _;
use serde::Serialize;

/// Where a subcommand writes. Text goes out as it is produced (a long `printMsg` streams);
/// in JSON mode text is dropped and the one document is written by [`Out::finish`].
#[derive(Debug)]
pub struct Out {
    json_mode: bool,
    /// The document, already rendered so that fields keep their declared order.
    document: Option<String>,
}

impl Out {
    pub fn new(json_mode: bool) -> Self {
        Self {
            json_mode,
            document: None,
        }
    }

    pub fn is_json(&self) -> bool {
        self.json_mode
    }

    /// Writes text (with a final newline added when missing) unless in JSON mode.
    pub fn text(&mut self, text: impl AsRef<str>) -> anyhow::Result<()> {
        if self.json_mode {
            return Ok(());
        }
        let text = text.as_ref();
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            stdout.write_all(b"\n")?;
        }
        stdout.flush()?;
        Ok(())
    }

    /// Sets the JSON document (ignored in text mode).
    pub fn json<T: Serialize>(&mut self, value: &T) -> anyhow::Result<()> {
        if self.json_mode {
            self.document = Some(serde_json::to_string_pretty(value)?);
        }
        Ok(())
    }

    /// Writes the JSON document, if in JSON mode.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        if !self.json_mode {
            return Ok(());
        }
        let document = self.document.take().unwrap_or_else(|| "null".to_owned());
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(document.as_bytes())?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
        Ok(())
    }
}

/// A table whose columns are as wide as their widest cell, two spaces apart, headers
/// `#`-prefixed as in mqadmin. Numeric columns align right.
#[derive(Debug)]
pub struct Table {
    headers: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Headers without the `#`; a header ending in `>` marks a right-aligned column.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers
                .iter()
                .map(|h| format!("#{}", h.trim_end_matches('>')))
                .collect(),
            right: headers.iter().map(|h| h.ends_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count());
                let right = self.right.get(i).copied().unwrap_or(false);
                if i > 0 {
                    line.push_str("  ");
                }
                if right {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if i + 1 < columns {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned.
pub fn key_values<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let pairs: Vec<(&str, String)> = pairs.into_iter().collect();
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let label = format!("{key}:");
        out.push_str(format!("{label:<width$}  {value}").trim_end());
        out.push('\n');
    }
    out
}

/// Epoch milliseconds as local time, `2025-03-01 14:05:09.123`; `-` for 0 (never).
pub fn human_time(timestamp_ms: i64) -> String {
    if timestamp_ms <= 0 {
        return "-".to_owned();
    }
    match chrono::Local.timestamp_millis_opt(timestamp_ms).single() {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => timestamp_ms.to_string(),
    }
}

/// A time given on the command line: `now`, epoch milliseconds, or mqadmin's
/// `yyyy-MM-dd#HH:mm:ss:SSS` in local time.
pub fn parse_time(value: &str) -> Result<i64, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("now") {
        return Ok(karman_client::wall_clock_ms());
    }
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    let naive = chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%d#%H:%M:%S:%3f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%d#%H:%M:%S"))
        .map_err(|_| {
            format!(
                "`{value}` is not a time: use now, epoch milliseconds, or yyyy-MM-dd#HH:mm:ss:SSS (local time)"
            )
        })?;
    chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|time| time.timestamp_millis())
        .ok_or_else(|| format!("`{value}` does not exist in the local time zone"))
}

/// The name of a RocketMQ version number as Java's `MQVersion` gives it (`V5_3_3` for
/// 479); numbers from before 4.0 are shown as they are.
pub fn version_name(version: i32) -> String {
    // From V4_0_0_SNAPSHOT (212) to V5_9_9 (611) the enum is regular: for each a.b.c a
    // SNAPSHOT then a release; 612 is HIGHER_VERSION.
    const V4_0_0_SNAPSHOT: i32 = 212;
    const HIGHER_VERSION: i32 = 612;
    match version {
        v if (V4_0_0_SNAPSHOT..HIGHER_VERSION).contains(&v) => {
            let step = v - V4_0_0_SNAPSHOT;
            let release = step / 2;
            let (major, minor, patch) = (4 + release / 100, release / 10 % 10, release % 10);
            let snapshot = if step % 2 == 0 { "_SNAPSHOT" } else { "" };
            format!("V{major}_{minor}_{patch}{snapshot}")
        }
        v if v >= HIGHER_VERSION => "HIGHER_VERSION".to_owned(),
        v => format!("version {v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_fit_their_widest_cell() {
        let mut table = Table::new(&["Broker Name", "QID>", "Note"]);
        table.row(vec!["broker-a".into(), "0".into(), "x".into()]);
        table.row(vec!["b".into(), "12".into(), String::new()]);
        assert_eq!(
            table.render(),
            "#Broker Name  #QID  #Note\n\
             broker-a         0  x\n\
             b               12\n"
        );
    }

    #[test]
    fn key_values_align_the_values() {
        assert_eq!(
            key_values([("Topic", "T".to_owned()), ("Queue ID", "3".to_owned())]),
            "Topic:     T\nQueue ID:  3\n"
        );
    }

    #[test]
    fn version_names_match_java_mqversion() {
        assert_eq!(version_name(479), "V5_3_3");
        assert_eq!(version_name(401), "V4_9_4");
        assert_eq!(version_name(213), "V4_0_0");
        assert_eq!(version_name(212), "V4_0_0_SNAPSHOT");
        assert_eq!(version_name(413), "V5_0_0");
        assert_eq!(version_name(37), "version 37");
    }

    #[test]
    fn times_parse_in_mqadmin_forms() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert!(parse_time("now").unwrap() > 1_700_000_000_000);
        let parsed = parse_time("2024-01-02#03:04:05:678").unwrap();
        assert_eq!(parsed % 1000, 678);
        assert_eq!(human_time(parsed), "2024-01-02 03:04:05.678");
        assert!(parse_time("yesterday").is_err());
        assert_eq!(human_time(0), "-");
    }
}
