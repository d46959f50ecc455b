//! Simple metric math: `+ - * /`, parentheses, numbers and query ids,
//! evaluated per timestamp present in every referenced series.

use super::Series;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Id(String),
    Op(char),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if "+-*/()".contains(c) {
            out.push(Tok::Op(c));
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let n: String = chars[start..i].iter().collect();
            out.push(Tok::Num(n.parse().map_err(|_| format!("bad number {n}"))?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Id(chars[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    Ok(out)
}

/// A value per timestamp, or a scalar.
#[derive(Debug, Clone)]
enum Val {
    Scalar(f64),
    Series(BTreeMap<i64, f64>),
}

fn key(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

fn combine(a: Val, b: Val, op: char) -> Val {
    let f = |x: f64, y: f64| match op {
        '+' => x + y,
        '-' => x - y,
        '*' => x * y,
        _ => x / y,
    };
    match (a, b) {
        (Val::Scalar(x), Val::Scalar(y)) => Val::Scalar(f(x, y)),
        (Val::Series(s), Val::Scalar(y)) => {
            Val::Series(s.into_iter().map(|(t, x)| (t, f(x, y))).collect())
        }
        (Val::Scalar(x), Val::Series(s)) => {
            Val::Series(s.into_iter().map(|(t, y)| (t, f(x, y))).collect())
        }
        (Val::Series(a), Val::Series(b)) => Val::Series(
            a.into_iter()
                .filter_map(|(t, x)| b.get(&t).map(|y| (t, f(x, *y))))
                .collect(),
        ),
    }
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    series: &'a BTreeMap<String, Series>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn expr(&mut self) -> Result<Val, String> {
        let mut v = self.term()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            v = combine(v, self.term()?, op);
        }
        Ok(v)
    }

    fn term(&mut self) -> Result<Val, String> {
        let mut v = self.atom()?;
        while let Some(Tok::Op(op @ ('*' | '/'))) = self.peek().cloned() {
            self.pos += 1;
            v = combine(v, self.atom()?, op);
        }
        Ok(v)
    }

    fn atom(&mut self) -> Result<Val, String> {
        let tok = self.peek().cloned().ok_or("unexpected end of expression")?;
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Val::Scalar(n)),
            Tok::Id(id) => self
                .series
                .get(&id)
                .map(|s| Val::Series(s.iter().map(|(t, v)| (key(*t), *v)).collect()))
                .ok_or_else(|| format!("unknown metric id {id}")),
            Tok::Op('(') => {
                let v = self.expr()?;
                match self.peek() {
                    Some(Tok::Op(')')) => {
                        self.pos += 1;
                        Ok(v)
                    }
                    _ => Err("missing )".into()),
                }
            }
            Tok::Op('-') => Ok(combine(Val::Scalar(0.0), self.atom()?, '-')),
            Tok::Op(c) => Err(format!("unexpected {c}")),
        }
    }
}

pub(super) fn evaluate(expr: &str, series: &BTreeMap<String, Series>) -> Result<Series, String> {
    let mut p = Parser {
        toks: lex(expr)?,
        pos: 0,
        series,
    };
    let v = p.expr()?;
    if p.pos != p.toks.len() {
        return Err("unexpected trailing input".into());
    }
    match v {
        Val::Scalar(_) => Err("an expression must refer to at least one metric".into()),
        Val::Series(s) => Ok(s
            .into_iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(t, v)| (t as f64 / 1000.0, v))
            .collect()),
    }
}

/// The metric ids an expression refers to: its identifiers that start with
/// a lowercase letter (CloudWatch's ids must; its functions, `FILL`,
/// `METRICS`, `SUM`..., are upper case). Text in quotes is skipped. Lenient
/// on purpose: the sandbox evaluates only simple arithmetic, but accepts
/// any expression AWS could.
pub(super) fn ids(expr: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            let close = chars[i + 1..]
                .iter()
                .position(|d| *d == c)
                .ok_or("unterminated string")?;
            i += close + 2;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let id: String = chars[start..i].iter().collect();
            if c.is_ascii_lowercase() && !out.contains(&id) {
                out.push(id);
            }
        } else {
            i += 1;
        }
    }
    if expr.trim().is_empty() {
        return Err("the expression is empty".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rate_expression() {
        let series: BTreeMap<String, Series> = [
            ("errors".to_string(), vec![(0.0, 3.0), (60.0, 0.0)]),
            (
                "inv".to_string(),
                vec![(0.0, 200.0), (60.0, 100.0), (120.0, 50.0)],
            ),
        ]
        .into();
        let out = evaluate("100 * errors / inv", &series).unwrap();
        assert_eq!(out, vec![(0.0, 1.5), (60.0, 0.0)]);
        assert_eq!(
            evaluate("(inv - errors) / 2", &series).unwrap()[0],
            (0.0, 98.5)
        );
        assert!(evaluate("inv / nope", &series).is_err());
        assert!(evaluate("1 + 2", &series).is_err());
        assert!(evaluate("inv +", &series).is_err());
    }

    #[test]
    fn ids_of_expressions() {
        assert_eq!(ids("100*errors/inv").unwrap(), ["errors", "inv"]);
        assert_eq!(ids("FILL(m1, 0) + m1").unwrap(), ["m1"]);
        assert_eq!(
            ids("SEARCH('{AWS/Lambda} x', 'Sum', 60)").unwrap(),
            Vec::<String>::new()
        );
        assert!(ids(" ").is_err());
    }
}
