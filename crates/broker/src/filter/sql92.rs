//! SQL92 property filters (spec semantics.md §8): the RocketMQ selector grammar, parsed
//! once at subscription time and evaluated against each message's properties.
//!
//! ```text
//! expr       := or
//! or         := and ( OR and )*
//! and        := not ( AND not )*
//! not        := NOT not | predicate
//! predicate  := value ( cmp value
//!                     | [NOT] BETWEEN value AND value
//!                     | [NOT] IN ( string {, string} )
//!                     | IS [NOT] NULL
//!                     | [NOT] (CONTAINS | STARTSWITH | ENDSWITH) string )?
//! value      := identifier | literal | '(' expr ')' | '-' number
//! cmp        := = | <> | > | >= | < | <=
//! literal    := 'string' ('' escapes a quote) | number | TRUE | FALSE | NULL
//! ```
//!
//! Keywords are case-insensitive; identifiers (`[a-zA-Z_$][a-zA-Z0-9_$.]*`) are property
//! names and case-sensitive. Evaluation uses SQL's three-valued logic: a missing property
//! makes a comparison unknown, and a message matches only when the whole expression is
//! true. A string compared with a number is read as a number; one that is not a number
//! makes the comparison unknown.
//!
//! No parser crate fits: SQL parsers lack RocketMQ's CONTAINS/STARTSWITH/ENDSWITH and
//! would accept far more than RocketMQ does, so the grammar is parsed here directly.
//!
//! ```
//! use karman_broker::filter::sql92::Sql92;
//!
//! let filter = Sql92::parse("a > 5 AND b = 'x'").unwrap();
//! let props = |name: &str| match name { "a" => Some("7"), "b" => Some("x"), _ => None };
//! assert!(filter.matches(props));
//! assert!(!filter.matches(|name: &str| (name == "b").then_some("x")));
//! assert!(Sql92::parse("a >").is_err());
//! ```

use std::fmt;

/// A parse failure, with the position in the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SQL92 filter expression at character {position}: {reason}")]
pub struct Sql92Error {
    pub position: usize,
    pub reason: String,
}

/// Nesting deeper than this is refused, so a hostile expression cannot exhaust the stack.
const DEPTH_MAX: usize = 64;
/// Expressions longer than this are refused.
pub const EXPRESSION_BYTES_MAX: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    Str(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Property(String),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrOp {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, Cmp, Operand),
    Between {
        value: Operand,
        low: Operand,
        high: Operand,
        negated: bool,
    },
    In {
        value: Operand,
        set: Vec<String>,
        negated: bool,
    },
    IsNull {
        value: Operand,
        negated: bool,
    },
    Str {
        value: Operand,
        op: StrOp,
        pattern: String,
        negated: bool,
    },
    /// A bare value used as a condition: TRUE, FALSE, or a property holding "true".
    Truth(Operand),
}

/// A compiled filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql92 {
    expr: Expr,
}

impl Sql92 {
    pub fn parse(text: &str) -> Result<Self, Sql92Error> {
        if text.len() > EXPRESSION_BYTES_MAX {
            return Err(Sql92Error {
                position: EXPRESSION_BYTES_MAX,
                reason: format!(
                    "expression is {} bytes, over the limit of {EXPRESSION_BYTES_MAX}",
                    text.len()
                ),
            });
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            depth: 0,
            end: text.len(),
        };
        let expr = parser.or()?;
        match parser.peek() {
            None => Ok(Self { expr }),
            Some(token) => {
                Err(parser.error_at(token.position, format!("unexpected {}", token.kind)))
            }
        }
    }

    /// True when the expression holds for a message whose properties `lookup` returns.
    pub fn matches<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        eval(&self.expr, &lookup) == Some(true)
    }
}

// ---------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Ident(String),
    Str(String),
    Long(i64),
    Double(f64),
    Keyword(&'static str),
    Symbol(&'static str),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ident(name) => write!(f, "identifier `{name}`"),
            Self::Str(text) => write!(f, "string '{text}'"),
            Self::Long(n) => write!(f, "number {n}"),
            Self::Double(n) => write!(f, "number {n}"),
            Self::Keyword(k) => write!(f, "keyword {k}"),
            Self::Symbol(s) => write!(f, "`{s}`"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    position: usize,
}

const KEYWORDS: &[&str] = &[
    "AND",
    "OR",
    "NOT",
    "BETWEEN",
    "IN",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "CONTAINS",
    "STARTSWITH",
    "ENDSWITH",
];

fn tokenize(text: &str) -> Result<Vec<Token>, Sql92Error> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let err = |position: usize, reason: String| Sql92Error { position, reason };
    while let Some(&(position, c)) = chars.get(i) {
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let kind = if c == '\'' {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(err(position, "unterminated string literal".into())),
                    Some((_, '\'')) if matches!(chars.get(i + 1), Some((_, '\''))) => {
                        value.push('\'');
                        i += 2;
                    }
                    Some((_, '\'')) => {
                        i += 1;
                        break;
                    }
                    Some((_, ch)) => {
                        value.push(*ch);
                        i += 1;
                    }
                }
            }
            Kind::Str(value)
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit()))
        {
            let start = i;
            let hex = c == '0' && matches!(chars.get(i + 1), Some((_, 'x' | 'X')));
            while let Some(&(_, ch)) = chars.get(i) {
                // A sign belongs to the number only right after a decimal exponent marker.
                let exponent_sign = matches!(ch, '+' | '-')
                    && !hex
                    && i > start
                    && matches!(chars.get(i - 1), Some((_, 'e' | 'E')));
                if ch.is_ascii_alphanumeric() || ch == '.' || exponent_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            let literal: String = chars
                .get(start..i)
                .unwrap_or_default()
                .iter()
                .map(|(_, ch)| ch)
                .collect();
            parse_number(&literal)
                .ok_or_else(|| err(position, format!("invalid number `{literal}`")))?
        } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while chars.get(i).is_some_and(|(_, ch)| {
                ch.is_ascii_alphanumeric() || *ch == '_' || *ch == '$' || *ch == '.'
            }) {
                i += 1;
            }
            let word: String = chars
                .get(start..i)
                .unwrap_or_default()
                .iter()
                .map(|(_, ch)| ch)
                .collect();
            match KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(&word)) {
                Some(keyword) => Kind::Keyword(keyword),
                None => Kind::Ident(word),
            }
        } else {
            let next = chars.get(i + 1).map(|(_, ch)| *ch);
            let symbol = match (c, next) {
                ('<', Some('>')) => "<>",
                ('>', Some('=')) => ">=",
                ('<', Some('=')) => "<=",
                ('=', _) => "=",
                ('>', _) => ">",
                ('<', _) => "<",
                ('(', _) => "(",
                (')', _) => ")",
                (',', _) => ",",
                ('-', _) => "-",
                _ => return Err(err(position, format!("unexpected character `{c}`"))),
            };
            i += symbol.len();
            Kind::Symbol(symbol)
        };
        tokens.push(Token { kind, position });
    }
    Ok(tokens)
}

fn parse_number(literal: &str) -> Option<Kind> {
    let lower = literal.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0x") {
        return i64::from_str_radix(hex.trim_end_matches('l'), 16)
            .ok()
            .map(Kind::Long);
    }
    let integral = lower.trim_end_matches('l');
    if integral.chars().all(|c| c.is_ascii_digit()) {
        if integral.len() > 1 && integral.starts_with('0') {
            return i64::from_str_radix(integral, 8).ok().map(Kind::Long);
        }
        return integral.parse().ok().map(Kind::Long);
    }
    lower
        .trim_end_matches(['d', 'f'])
        .parse()
        .ok()
        .map(Kind::Double)
}

// ---------------------------------------------------------------------------------------
// Parser

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
    /// Length of the expression, where "the end" errors point.
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn end_position(&self) -> usize {
        self.end
    }

    fn error_at(&self, position: usize, reason: String) -> Sql92Error {
        Sql92Error { position, reason }
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if matches!(self.peek(), Some(Token { kind: Kind::Keyword(k), .. }) if *k == keyword) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some(Token { kind: Kind::Symbol(s), .. }) if *s == symbol) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, keyword: &'static str) -> Result<(), Sql92Error> {
        if self.eat_keyword(keyword) {
            return Ok(());
        }
        Err(self.expected(keyword))
    }

    fn expected(&self, what: &str) -> Sql92Error {
        match self.peek() {
            Some(token) => self.error_at(
                token.position,
                format!("expected {what}, found {}", token.kind),
            ),
            None => self.error_at(
                self.end_position(),
                format!("expected {what}, found the end of the expression"),
            ),
        }
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, Sql92Error>,
    ) -> Result<T, Sql92Error> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return Err(self.error_at(
                self.peek().map_or(0, |t| t.position),
                "expression nests too deeply".into(),
            ));
        }
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn or(&mut self) -> Result<Expr, Sql92Error> {
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, Sql92Error> {
        let mut left = self.not()?;
        while self.eat_keyword("AND") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, Sql92Error> {
        if self.eat_keyword("NOT") {
            return self.nested(|p| Ok(Expr::Not(Box::new(p.not()?))));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, Sql92Error> {
        // A parenthesised condition, unless it is just a parenthesised value compared next.
        if matches!(
            self.peek(),
            Some(Token {
                kind: Kind::Symbol("("),
                ..
            })
        ) {
            self.at += 1;
            let inner = self.nested(|p| p.or())?;
            if !self.eat_symbol(")") {
                return Err(self.expected("`)`"));
            }
            return Ok(inner);
        }
        let value = self.operand()?;
        let negated = self.eat_keyword("NOT");
        if self.eat_keyword("BETWEEN") {
            let low = self.operand()?;
            self.expect_keyword("AND")?;
            let high = self.operand()?;
            return Ok(Expr::Between {
                value,
                low,
                high,
                negated,
            });
        }
        if self.eat_keyword("IN") {
            return self.in_list(value, negated);
        }
        for (keyword, op) in [
            ("CONTAINS", StrOp::Contains),
            ("STARTSWITH", StrOp::StartsWith),
            ("ENDSWITH", StrOp::EndsWith),
        ] {
            if self.eat_keyword(keyword) {
                let pattern = self.string_literal()?;
                return Ok(Expr::Str {
                    value,
                    op,
                    pattern,
                    negated,
                });
            }
        }
        if negated {
            return Err(self.expected("BETWEEN, IN, CONTAINS, STARTSWITH or ENDSWITH after NOT"));
        }
        if self.eat_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            self.expect_keyword("NULL")?;
            return Ok(Expr::IsNull { value, negated });
        }
        let cmp = match self.peek().map(|t| &t.kind) {
            Some(Kind::Symbol("=")) => Some(Cmp::Eq),
            Some(Kind::Symbol("<>")) => Some(Cmp::Ne),
            Some(Kind::Symbol(">")) => Some(Cmp::Gt),
            Some(Kind::Symbol(">=")) => Some(Cmp::Ge),
            Some(Kind::Symbol("<")) => Some(Cmp::Lt),
            Some(Kind::Symbol("<=")) => Some(Cmp::Le),
            _ => None,
        };
        match cmp {
            Some(cmp) => {
                self.at += 1;
                Ok(Expr::Compare(value, cmp, self.operand()?))
            }
            None => match value {
                Operand::Literal(Value::Bool(_)) | Operand::Property(_) => Ok(Expr::Truth(value)),
                _ => Err(self.expected("a comparison")),
            },
        }
    }

    fn in_list(&mut self, value: Operand, negated: bool) -> Result<Expr, Sql92Error> {
        if !self.eat_symbol("(") {
            return Err(self.expected("`(` after IN"));
        }
        let mut set = vec![self.string_literal()?];
        while self.eat_symbol(",") {
            set.push(self.string_literal()?);
        }
        if !self.eat_symbol(")") {
            return Err(self.expected("`,` or `)` in the IN list"));
        }
        Ok(Expr::In {
            value,
            set,
            negated,
        })
    }

    fn string_literal(&mut self) -> Result<String, Sql92Error> {
        match self.peek().map(|t| t.kind.clone()) {
            Some(Kind::Str(text)) => {
                self.at += 1;
                Ok(text)
            }
            _ => Err(self.expected("a string literal")),
        }
    }

    fn operand(&mut self) -> Result<Operand, Sql92Error> {
        let Some(token) = self.peek().cloned() else {
            return Err(self.expected("a value"));
        };
        self.at += 1;
        let operand = match token.kind {
            Kind::Ident(name) => Operand::Property(name),
            Kind::Str(text) => Operand::Literal(Value::Str(text)),
            Kind::Long(n) => Operand::Literal(Value::Long(n)),
            Kind::Double(n) => Operand::Literal(Value::Double(n)),
            Kind::Keyword("TRUE") => Operand::Literal(Value::Bool(true)),
            Kind::Keyword("FALSE") => Operand::Literal(Value::Bool(false)),
            Kind::Keyword("NULL") => Operand::Literal(Value::Null),
            Kind::Symbol("-") => match self.operand()? {
                Operand::Literal(Value::Long(n)) => Operand::Literal(Value::Long(n.wrapping_neg())),
                Operand::Literal(Value::Double(n)) => Operand::Literal(Value::Double(-n)),
                _ => return Err(self.error_at(token.position, "`-` must precede a number".into())),
            },
            other => {
                return Err(
                    self.error_at(token.position, format!("expected a value, found {other}"))
                );
            }
        };
        Ok(operand)
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation

fn resolve<'a>(operand: &Operand, lookup: &impl Fn(&str) -> Option<&'a str>) -> Value {
    match operand {
        Operand::Literal(value) => value.clone(),
        Operand::Property(name) => lookup(name).map_or(Value::Null, |v| Value::Str(v.to_owned())),
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Long(n) => Some(*n as f64),
        Value::Double(n) => Some(*n),
        Value::Str(text) => text.trim().parse::<f64>().ok(),
        Value::Bool(_) | Value::Null => None,
    }
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Str(text) if text.eq_ignore_ascii_case("true") => Some(true),
        Value::Str(text) if text.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Orders two values, or `None` when they cannot be compared (unknown).
fn order(left: &Value, right: &Value, equality_only: bool) -> Option<std::cmp::Ordering> {
    match (left, right) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Str(a), Value::Str(b)) if equality_only => Some(a.cmp(b)),
        (Value::Bool(_), _) | (_, Value::Bool(_)) if equality_only => {
            let (a, b) = (as_bool(left)?, as_bool(right)?);
            Some(a.cmp(&b))
        }
        (Value::Long(a), Value::Long(b)) => Some(a.cmp(b)),
        _ => as_number(left)?.partial_cmp(&as_number(right)?),
    }
}

fn eval<'a>(expr: &Expr, lookup: &impl Fn(&str) -> Option<&'a str>) -> Option<bool> {
    match expr {
        Expr::Or(a, b) => match (eval(a, lookup), eval(b, lookup)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Expr::And(a, b) => match (eval(a, lookup), eval(b, lookup)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Expr::Not(inner) => eval(inner, lookup).map(|b| !b),
        Expr::Compare(left, cmp, right) => {
            let (left, right) = (resolve(left, lookup), resolve(right, lookup));
            let ordering = order(&left, &right, matches!(cmp, Cmp::Eq | Cmp::Ne))?;
            Some(match cmp {
                Cmp::Eq => ordering.is_eq(),
                Cmp::Ne => ordering.is_ne(),
                Cmp::Gt => ordering.is_gt(),
                Cmp::Ge => ordering.is_ge(),
                Cmp::Lt => ordering.is_lt(),
                Cmp::Le => ordering.is_le(),
            })
        }
        Expr::Between {
            value,
            low,
            high,
            negated,
        } => {
            let value = resolve(value, lookup);
            let above = order(&value, &resolve(low, lookup), false)?.is_ge();
            let below = order(&value, &resolve(high, lookup), false)?.is_le();
            Some((above && below) != *negated)
        }
        Expr::In {
            value,
            set,
            negated,
        } => match resolve(value, lookup) {
            Value::Null => None,
            Value::Str(text) => Some(set.contains(&text) != *negated),
            _ => None,
        },
        Expr::IsNull { value, negated } => {
            Some((resolve(value, lookup) == Value::Null) != *negated)
        }
        Expr::Str {
            value,
            op,
            pattern,
            negated,
        } => match resolve(value, lookup) {
            Value::Str(text) => {
                let hit = match op {
                    StrOp::Contains => text.contains(pattern.as_str()),
                    StrOp::StartsWith => text.starts_with(pattern.as_str()),
                    StrOp::EndsWith => text.ends_with(pattern.as_str()),
                };
                Some(hit != *negated)
            }
            _ => None,
        },
        Expr::Truth(value) => as_bool(&resolve(value, lookup)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn check(expression: &str, props: &[(&str, &str)]) -> bool {
        let map: HashMap<&str, &str> = props.iter().copied().collect();
        Sql92::parse(expression)
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
            .matches(|name| map.get(name).copied())
    }

    #[test]
    fn comparisons_convert_strings_to_numbers() {
        assert!(check("a > 5 AND b = 'x'", &[("a", "6"), ("b", "x")]));
        assert!(!check("a > 5 AND b = 'x'", &[("a", "5"), ("b", "x")]));
        assert!(!check("a > 5 AND b = 'x'", &[("a", "9"), ("b", "y")]));
        assert!(!check("a > 5", &[("a", "not a number")]));
        assert!(check("a >= 1.5 and a <= 2", &[("a", "1.5")]));
        assert!(check("a = 10", &[("a", "10")]));
        assert!(check("a <> 10", &[("a", "11")]));
        assert!(check("a < -3", &[("a", "-4")]));
        assert!(check("a = 0x10", &[("a", "16")]));
    }

    #[test]
    fn missing_property_is_unknown_not_false() {
        assert!(!check("a > 5", &[]));
        assert!(!check("NOT (a > 5)", &[]), "NOT unknown is unknown");
        assert!(check("a > 5 OR b = 'x'", &[("b", "x")]));
        assert!(!check("a > 5 AND b = 'x'", &[("b", "x")]));
        assert!(check("a IS NULL", &[]));
        assert!(check("a IS NOT NULL", &[("a", "1")]));
    }

    #[test]
    fn between_in_and_string_operators() {
        assert!(check("a BETWEEN 0 AND 3", &[("a", "3")]));
        assert!(!check("a BETWEEN 0 AND 3", &[("a", "4")]));
        assert!(check("a NOT BETWEEN 0 AND 3", &[("a", "4")]));
        assert!(check("TAGS IN ('TagA', 'TagB')", &[("TAGS", "TagB")]));
        assert!(check("TAGS NOT IN ('TagA')", &[("TAGS", "TagB")]));
        assert!(!check("TAGS NOT IN ('TagA')", &[]));
        assert!(check("name CONTAINS 'rock'", &[("name", "rocketmq")]));
        assert!(check("name STARTSWITH 'rock'", &[("name", "rocketmq")]));
        assert!(check("name NOT ENDSWITH 'x'", &[("name", "rocketmq")]));
        assert!(check("name = 'it''s'", &[("name", "it's")]));
    }

    #[test]
    fn keywords_are_case_insensitive_and_precedence_holds() {
        assert!(check("a = 1 or b = 2 and c = 3", &[("a", "1")]));
        assert!(!check("(a = 1 or b = 2) and c = 3", &[("a", "1")]));
        assert!(check("TRUE", &[]));
        assert!(check("flag", &[("flag", "true")]));
        assert!(!check("FALSE OR flag", &[("flag", "false")]));
    }

    #[test]
    fn invalid_expressions_say_where() {
        for (expression, position) in [
            ("a >", 3),
            ("a > 5 AND", 9),
            ("a IN (1)", 6),
            ("'open", 0),
            ("a ! 3", 2),
            ("a > 5 b", 6),
        ] {
            let error = Sql92::parse(expression).unwrap_err();
            assert_eq!(error.position, position, "{expression}: {error}");
        }
        assert!(Sql92::parse(&"(".repeat(200)).is_err());
        assert!(Sql92::parse(&"NOT ".repeat(200)).is_err());
    }
}
