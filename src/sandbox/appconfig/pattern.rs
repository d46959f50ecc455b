//! A small backtracking regular-expression matcher for the `pattern`
//! constraint of feature-flag attributes (AppConfig uses JSON-Schema
//! patterns: ECMAScript syntax, matched anywhere unless anchored). It knows
//! literals, `.`, classes (`[a-z]`, `[^…]`, `\d \w \s` and their negations),
//! groups (`(…)`, `(?:…)`), `|`, `* + ? {n} {n,} {n,m}` and `^ $`; a pattern
//! using anything else (lookaround, backreferences, `\b`) does not parse.
//! No crate for this: the sandbox keeps its dependencies to what the product uses.

#[derive(Debug, Clone)]
enum Node {
    Char(char),
    Any,
    Class(Vec<(char, char)>, bool),
    Start,
    End,
    Group(Vec<Vec<Node>>),
    Repeat(Box<Node>, u32, Option<u32>),
}

/// A parsed pattern.
#[derive(Debug, Clone)]
pub struct Pattern(Vec<Vec<Node>>);

impl Pattern {
    /// `None` when the pattern is malformed or uses what this matcher lacks.
    pub fn parse(src: &str) -> Option<Pattern> {
        let chars: Vec<char> = src.chars().collect();
        let mut pos = 0;
        let alt = parse_alt(&chars, &mut pos, 0)?;
        (pos == chars.len()).then_some(Pattern(alt))
    }

    /// Whether the pattern matches somewhere in `s` (as ECMAScript's `test`).
    pub fn is_match(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        (0..=chars.len()).any(|start| {
            self.0
                .iter()
                .any(|seq| match_seq(seq, &chars, start, &|_| true))
        })
    }
}

const DIGIT: &[(char, char)] = &[('0', '9')];
const WORD: &[(char, char)] = &[('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')];
const SPACE: &[(char, char)] = &[(' ', ' '), ('\t', '\r')];

fn parse_alt(c: &[char], pos: &mut usize, depth: u32) -> Option<Vec<Vec<Node>>> {
    if depth > 32 {
        return None;
    }
    let mut alts = vec![parse_seq(c, pos, depth)?];
    while c.get(*pos) == Some(&'|') {
        *pos += 1;
        alts.push(parse_seq(c, pos, depth)?);
    }
    Some(alts)
}

fn parse_seq(c: &[char], pos: &mut usize, depth: u32) -> Option<Vec<Node>> {
    let mut seq = Vec::new();
    while let Some(&ch) = c.get(*pos) {
        if ch == '|' || ch == ')' {
            break;
        }
        *pos += 1;
        let atom = match ch {
            '(' => {
                if c.get(*pos) == Some(&'?') {
                    if c.get(*pos + 1) != Some(&':') {
                        return None;
                    }
                    *pos += 2;
                }
                let inner = parse_alt(c, pos, depth + 1)?;
                if c.get(*pos) != Some(&')') {
                    return None;
                }
                *pos += 1;
                Node::Group(inner)
            }
            '[' => parse_class(c, pos)?,
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '\\' => {
                let e = *c.get(*pos)?;
                *pos += 1;
                escape(e)?
            }
            '*' | '+' | '?' => return None,
            other => Node::Char(other),
        };
        seq.push(quantified(c, pos, atom)?);
    }
    Some(seq)
}

fn escape(e: char) -> Option<Node> {
    Some(match e {
        'd' => Node::Class(DIGIT.to_vec(), false),
        'D' => Node::Class(DIGIT.to_vec(), true),
        'w' => Node::Class(WORD.to_vec(), false),
        'W' => Node::Class(WORD.to_vec(), true),
        's' => Node::Class(SPACE.to_vec(), false),
        'S' => Node::Class(SPACE.to_vec(), true),
        'n' => Node::Char('\n'),
        't' => Node::Char('\t'),
        'r' => Node::Char('\r'),
        c if c.is_ascii_alphanumeric() => return None, // \b, \1, \p…
        c => Node::Char(c),
    })
}

fn parse_class(c: &[char], pos: &mut usize) -> Option<Node> {
    let negated = c.get(*pos) == Some(&'^');
    if negated {
        *pos += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let ch = *c.get(*pos)?;
        *pos += 1;
        if ch == ']' && !first {
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            let e = *c.get(*pos)?;
            *pos += 1;
            match escape(e)? {
                Node::Char(x) => x,
                Node::Class(r, false) => {
                    ranges.extend(r);
                    continue;
                }
                _ => return None,
            }
        } else {
            ch
        };
        if c.get(*pos) == Some(&'-') && c.get(*pos + 1).is_some_and(|&n| n != ']') {
            let mut hi = c[*pos + 1];
            *pos += 2;
            if hi == '\\' {
                hi = *c.get(*pos)?;
                *pos += 1;
            }
            if hi < lo {
                return None;
            }
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
    Some(Node::Class(ranges, negated))
}

fn quantified(c: &[char], pos: &mut usize, atom: Node) -> Option<Node> {
    let (min, max) = match c.get(*pos) {
        Some('*') => (0, None),
        Some('+') => (1, None),
        Some('?') => (0, Some(1)),
        Some('{') => match bounds(c, *pos + 1) {
            Some((min, max, end)) => {
                *pos = end - 1;
                (min, max)
            }
            None => return Some(atom), // a literal `{`, as ECMAScript reads it
        },
        _ => return Some(atom),
    };
    *pos += 1;
    if c.get(*pos) == Some(&'?') {
        *pos += 1; // lazy: same yes/no answer
    }
    if matches!(atom, Node::Start | Node::End) || max.is_some_and(|m| m < min) {
        return None;
    }
    Some(Node::Repeat(Box::new(atom), min, max))
}

/// `{n}`, `{n,}`, `{n,m}` from just after the brace: (min, max, index past `}`).
fn bounds(c: &[char], mut i: usize) -> Option<(u32, Option<u32>, usize)> {
    let num = |i: &mut usize| -> Option<u32> {
        let start = *i;
        while c.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        (*i > start).then(|| c[start..*i].iter().collect::<String>().parse().ok())?
    };
    let min = num(&mut i)?;
    let max = if c.get(i) == Some(&',') {
        i += 1;
        if c.get(i) == Some(&'}') {
            None
        } else {
            Some(num(&mut i)?)
        }
    } else {
        Some(min)
    };
    (c.get(i) == Some(&'}') && min <= 1000).then_some((min, max, i + 1))
}

fn match_seq(seq: &[Node], s: &[char], i: usize, k: &dyn Fn(usize) -> bool) -> bool {
    match seq.split_first() {
        None => k(i),
        Some((first, rest)) => match_node(first, s, i, &|j| match_seq(rest, s, j, k)),
    }
}

fn match_node(n: &Node, s: &[char], i: usize, k: &dyn Fn(usize) -> bool) -> bool {
    match n {
        Node::Char(c) => s.get(i) == Some(c) && k(i + 1),
        Node::Any => s.get(i).is_some_and(|&c| c != '\n') && k(i + 1),
        Node::Class(ranges, negated) => {
            s.get(i)
                .is_some_and(|&c| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) != *negated)
                && k(i + 1)
        }
        Node::Start => i == 0 && k(i),
        Node::End => i == s.len() && k(i),
        Node::Group(alts) => alts.iter().any(|seq| match_seq(seq, s, i, k)),
        Node::Repeat(inner, min, max) => repeat(inner, *min, *max, 0, s, i, k),
    }
}

/// Greedy: one more, else stop here if enough; an empty match ends the loop.
fn repeat(
    inner: &Node,
    min: u32,
    max: Option<u32>,
    count: u32,
    s: &[char],
    i: usize,
    k: &dyn Fn(usize) -> bool,
) -> bool {
    if max.is_none_or(|m| count < m)
        && match_node(inner, s, i, &|j| {
            j != i && repeat(inner, min, max, count + 1, s, j, k)
        })
    {
        return true;
    }
    count >= min && k(i)
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn m(p: &str, s: &str) -> bool {
        Pattern::parse(p)
            .unwrap_or_else(|| panic!("{p} parses"))
            .is_match(s)
    }

    #[test]
    fn matches_like_ecmascript_test() {
        assert!(m("^[a-z][a-zA-Z\\d_-]{0,63}$", "use_optimized-prompts9"));
        assert!(!m("^[a-z][a-zA-Z\\d_-]{0,63}$", "Use"));
        assert!(m("abc", "xxabcxx"), "unanchored finds it anywhere");
        assert!(!m("^abc$", "xabc"));
        assert!(m("^(gpt|claude)-\\d+(\\.\\d+)?$", "claude-3.5"));
        assert!(!m("^(gpt|claude)-\\d+(\\.\\d+)?$", "claude-3."));
        assert!(m("^a{2,3}$", "aaa"));
        assert!(!m("^a{2,3}$", "aaaa"));
        assert!(m("^[^0-9]+$", "abc"));
        assert!(!m("^[^0-9]+$", "a1"));
        assert!(m("^.*x$", "abcx"));
        assert!(m("^(?:ab)*$", "abab"));
        assert!(m("a{", "a{"), "a lone brace is a literal");
        assert!(m("^\\S+@\\S+$", "a@b"));
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        for p in [
            "(", "a)", "[a-", "*a", "\\bword", "(?=x)", "(a)\\1", "a{3,2}",
        ] {
            assert!(Pattern::parse(p).is_none(), "{p}");
        }
    }
}
