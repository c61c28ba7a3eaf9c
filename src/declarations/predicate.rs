//! The `Predicate` of an activation: the subset of Apple's predicate format (`NSPredicate`) that
//! activations use, parsed and evaluated against the device's status items.
//!
//! Grammar: `TRUEPREDICATE`, `FALSEPREDICATE`, comparisons `lhs OP rhs` with `OP` one of `==`,
//! `=`, `!=`, `<>`, `<`, `<=`, `=<`, `>`, `>=`, `=>`, `BEGINSWITH`, `ENDSWITH`, `CONTAINS`, `IN`
//! (each string operator may carry `[c]`, `[d]` or `[cd]`), joined by `AND`/`&&`, `OR`/`||`,
//! `NOT`/`!` and parentheses. Operands: `@status(item.name)`, quoted strings, numbers, `TRUE`,
//! `FALSE`, `YES`, `NO`, `NULL`/`NIL`, and `{…}` lists for `IN`. Keywords are case-insensitive.
//!
//! As `NSPredicate` does, strings compare as strings (so `"9.0" > "14.0"`) and numbers as
//! numbers. A predicate bsi cannot parse is an error (`Error.UnableToParsePredicate`), one that
//! names a status item the device does not have cannot be evaluated
//! (`Error.UnableToEvaluatePredicate`); neither is ever taken as true. Input is bounded: at most
//! [`MAX_PREDICATE_BYTES`] bytes and [`MAX_DEPTH`] levels of nesting.

use std::cmp::Ordering;

/// The longest predicate bsi parses.
pub(crate) const MAX_PREDICATE_BYTES: usize = 4096;
/// The deepest nesting of parentheses and `NOT`s bsi parses.
pub(crate) const MAX_DEPTH: usize = 32;

/// Why a predicate does not give an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PredicateError {
    /// It does not parse; the message says where.
    Parse(String),
    /// It names a status item the device does not have.
    Evaluate(String),
}

/// A value in a predicate.
#[derive(Clone, Debug, PartialEq)]
enum Operand {
    Status(String),
    Text(String),
    Number(f64),
    Bool(bool),
    Null,
    List(Vec<Operand>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    BeginsWith,
    EndsWith,
    Contains,
    In,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Const(bool),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Compare {
        lhs: Operand,
        op: Op,
        case_insensitive: bool,
        rhs: Operand,
    },
}

/// A parsed predicate.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Predicate(Node);

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    Symbol(&'static str),
    Status(String),
    Modifier(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            let (text, next) = quoted(&chars, i)?;
            out.push(Token::Text(text));
            i = next;
            continue;
        }
        if c == '@' {
            let rest: String = chars[i..].iter().collect();
            let lower = rest.to_ascii_lowercase();
            if !lower.starts_with("@status(") {
                return Err(format!("unknown function at `{}`", short(&rest)));
            }
            let Some(close) = rest.find(')') else {
                return Err("`@status(` is not closed".to_owned());
            };
            let name = rest["@status(".len()..close].trim().to_owned();
            if name.is_empty() {
                return Err("`@status()` names no status item".to_owned());
            }
            out.push(Token::Status(name));
            i += rest[..=close].chars().count();
            continue;
        }
        if c == '[' {
            let rest: String = chars[i..].iter().collect();
            let Some(close) = rest.find(']') else {
                return Err("a `[` modifier is not closed".to_owned());
            };
            out.push(Token::Modifier(rest[1..close].to_ascii_lowercase()));
            i += rest[..=close].chars().count();
            continue;
        }
        if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = s
                .parse::<f64>()
                .map_err(|_| format!("`{s}` is not a number"))?;
            out.push(Token::Number(n));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
            continue;
        }
        let (sym, len) = symbol(&chars[i..chars.len().min(i + 2)])?;
        out.push(Token::Symbol(sym));
        i += len;
    }
    Ok(out)
}

/// The string quoted at `chars[start]` (escapes taken literally) and the index after it.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err("a quoted string is not closed".to_owned()),
            Some('\\') => {
                if let Some(n) = chars.get(i + 1) {
                    s.push(*n);
                }
                i += 2;
            }
            Some(ch) if *ch == quote => return Ok((s, i + 1)),
            Some(ch) => {
                s.push(*ch);
                i += 1;
            }
        }
    }
}

/// The operator or punctuation `next` (one or two characters) starts with, and its length.
fn symbol(next: &[char]) -> Result<(&'static str, usize), String> {
    let two: String = next.iter().collect();
    let sym = match two.as_str() {
        "==" => Some("=="),
        "!=" | "<>" => Some("!="),
        "<=" | "=<" => Some("<="),
        ">=" | "=>" => Some(">="),
        "&&" => Some("&&"),
        "||" => Some("||"),
        _ => None,
    };
    if let Some(sym) = sym {
        return Ok((sym, 2));
    }
    let one = match next[0] {
        '=' => "==",
        '<' => "<",
        '>' => ">",
        '!' => "!",
        '(' => "(",
        ')' => ")",
        '{' => "{",
        '}' => "}",
        ',' => ",",
        other => return Err(format!("unexpected `{other}`")),
    };
    Ok((one, 1))
}

fn short(s: &str) -> String {
    s.chars().take(24).collect()
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn is_symbol(&self, sym: &str) -> bool {
        matches!(self.peek(), Some(Token::Symbol(s)) if *s == sym)
    }

    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(format!("it nests deeper than {MAX_DEPTH} levels"))
        } else {
            Ok(())
        }
    }

    fn or(&mut self) -> Result<Node, String> {
        let mut node = self.and()?;
        while self.is_word("OR") || self.is_symbol("||") {
            self.next();
            let rhs = self.and()?;
            node = Node::Or(Box::new(node), Box::new(rhs));
        }
        Ok(node)
    }

    fn and(&mut self) -> Result<Node, String> {
        let mut node = self.not()?;
        while self.is_word("AND") || self.is_symbol("&&") {
            self.next();
            let rhs = self.not()?;
            node = Node::And(Box::new(node), Box::new(rhs));
        }
        Ok(node)
    }

    fn not(&mut self) -> Result<Node, String> {
        if self.is_word("NOT") || self.is_symbol("!") {
            self.next();
            self.deeper()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, String> {
        if self.is_symbol("(") {
            self.next();
            self.deeper()?;
            let inner = self.or()?;
            self.depth -= 1;
            if !self.is_symbol(")") {
                return Err("a `(` is not closed".to_owned());
            }
            self.next();
            return Ok(inner);
        }
        if self.is_word("TRUEPREDICATE") {
            self.next();
            return Ok(Node::Const(true));
        }
        if self.is_word("FALSEPREDICATE") {
            self.next();
            return Ok(Node::Const(false));
        }
        let lhs = self.operand()?;
        let (op, case_insensitive) = self.operator()?;
        let rhs = self.operand()?;
        Ok(Node::Compare {
            lhs,
            op,
            case_insensitive,
            rhs,
        })
    }

    fn operator(&mut self) -> Result<(Op, bool), String> {
        let op = match self.next() {
            Some(Token::Symbol("==")) => Op::Eq,
            Some(Token::Symbol("!=")) => Op::Ne,
            Some(Token::Symbol("<")) => Op::Lt,
            Some(Token::Symbol("<=")) => Op::Le,
            Some(Token::Symbol(">")) => Op::Gt,
            Some(Token::Symbol(">=")) => Op::Ge,
            Some(Token::Word(w)) => match w.to_ascii_uppercase().as_str() {
                "BEGINSWITH" => Op::BeginsWith,
                "ENDSWITH" => Op::EndsWith,
                "CONTAINS" => Op::Contains,
                "IN" => Op::In,
                _ => return Err(format!("`{}` is not an operator bsi knows", short(&w))),
            },
            Some(_) => return Err("expected a comparison operator".to_owned()),
            None => return Err("it ends where a comparison operator should be".to_owned()),
        };
        let mut case_insensitive = false;
        if let Some(Token::Modifier(m)) = self.peek() {
            if !matches!(m.as_str(), "c" | "d" | "cd" | "dc") {
                return Err(format!("`[{}]` is not a modifier bsi knows", short(m)));
            }
            case_insensitive = m.contains('c');
            self.next();
        }
        Ok((op, case_insensitive))
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Token::Status(name)) => Ok(Operand::Status(name)),
            Some(Token::Text(s)) => Ok(Operand::Text(s)),
            Some(Token::Number(n)) => Ok(Operand::Number(n)),
            Some(Token::Word(w)) => match w.to_ascii_uppercase().as_str() {
                "TRUE" | "YES" => Ok(Operand::Bool(true)),
                "FALSE" | "NO" => Ok(Operand::Bool(false)),
                "NULL" | "NIL" => Ok(Operand::Null),
                _ => Err(format!("`{}` is not a value bsi knows", short(&w))),
            },
            Some(Token::Symbol("{")) => {
                let mut items = Vec::new();
                if self.is_symbol("}") {
                    self.next();
                    return Ok(Operand::List(items));
                }
                loop {
                    items.push(self.operand()?);
                    match self.next() {
                        Some(Token::Symbol(",")) => {}
                        Some(Token::Symbol("}")) => return Ok(Operand::List(items)),
                        _ => return Err("a `{` list is not closed".to_owned()),
                    }
                }
            }
            Some(_) => Err("expected a value".to_owned()),
            None => Err("it ends where a value should be".to_owned()),
        }
    }
}

impl Predicate {
    /// Parses `text`.
    pub(crate) fn parse(text: &str) -> Result<Self, PredicateError> {
        if text.len() > MAX_PREDICATE_BYTES {
            return Err(PredicateError::Parse(format!(
                "it is longer than {MAX_PREDICATE_BYTES} bytes"
            )));
        }
        let tokens = tokenize(text).map_err(PredicateError::Parse)?;
        if tokens.is_empty() {
            return Err(PredicateError::Parse("it is empty".to_owned()));
        }
        let mut parser = Parser {
            tokens,
            at: 0,
            depth: 0,
        };
        let node = parser.or().map_err(PredicateError::Parse)?;
        if parser.at < parser.tokens.len() {
            return Err(PredicateError::Parse(
                "there is more after a complete predicate".to_owned(),
            ));
        }
        Ok(Predicate(node))
    }

    /// Evaluates it; `status` gives a status item's value (`None`: the device has no such item).
    pub(crate) fn evaluate(
        &self,
        status: &dyn Fn(&str) -> Option<StatusValue>,
    ) -> Result<bool, PredicateError> {
        eval(&self.0, status)
    }
}

/// A status item's value as a predicate sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StatusValue {
    /// A string.
    Text(String),
}

fn resolve(
    o: &Operand,
    status: &dyn Fn(&str) -> Option<StatusValue>,
) -> Result<Operand, PredicateError> {
    Ok(match o {
        Operand::Status(name) => match status(name) {
            Some(StatusValue::Text(s)) => Operand::Text(s),
            None => {
                return Err(PredicateError::Evaluate(format!(
                    "the device has no status item `{}`",
                    short(name)
                )));
            }
        },
        Operand::List(items) => Operand::List(
            items
                .iter()
                .map(|i| resolve(i, status))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

fn fold(s: &str, ci: bool) -> String {
    if ci { s.to_lowercase() } else { s.to_owned() }
}

fn order(a: &Operand, b: &Operand, ci: bool) -> Option<Ordering> {
    match (a, b) {
        (Operand::Text(x), Operand::Text(y)) => Some(fold(x, ci).cmp(&fold(y, ci))),
        (Operand::Number(x), Operand::Number(y)) => x.partial_cmp(y),
        (Operand::Bool(x), Operand::Bool(y)) => Some(x.cmp(y)),
        (Operand::Null, Operand::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

fn compare(lhs: &Operand, op: Op, ci: bool, rhs: &Operand) -> bool {
    match op {
        Op::Eq => order(lhs, rhs, ci) == Some(Ordering::Equal),
        Op::Ne => order(lhs, rhs, ci) != Some(Ordering::Equal),
        Op::Lt => order(lhs, rhs, ci) == Some(Ordering::Less),
        Op::Le => matches!(order(lhs, rhs, ci), Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => order(lhs, rhs, ci) == Some(Ordering::Greater),
        Op::Ge => matches!(
            order(lhs, rhs, ci),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Op::BeginsWith | Op::EndsWith | Op::Contains => match (lhs, rhs) {
            (Operand::Text(x), Operand::Text(y)) => {
                let (x, y) = (fold(x, ci), fold(y, ci));
                match op {
                    Op::BeginsWith => x.starts_with(&y),
                    Op::EndsWith => x.ends_with(&y),
                    _ => x.contains(&y),
                }
            }
            (Operand::List(items), item) if op == Op::Contains => items
                .iter()
                .any(|i| order(i, item, ci) == Some(Ordering::Equal)),
            _ => false,
        },
        Op::In => match rhs {
            Operand::List(items) => items
                .iter()
                .any(|i| order(lhs, i, ci) == Some(Ordering::Equal)),
            Operand::Text(y) => match lhs {
                Operand::Text(x) => fold(y, ci).contains(&fold(x, ci)),
                _ => false,
            },
            _ => false,
        },
    }
}

fn eval(node: &Node, status: &dyn Fn(&str) -> Option<StatusValue>) -> Result<bool, PredicateError> {
    Ok(match node {
        Node::Const(b) => *b,
        Node::Not(inner) => !eval(inner, status)?,
        Node::And(a, b) => eval(a, status)? && eval(b, status)?,
        Node::Or(a, b) => eval(a, status)? || eval(b, status)?,
        Node::Compare {
            lhs,
            op,
            case_insensitive,
            rhs,
        } => {
            let (l, r) = (resolve(lhs, status)?, resolve(rhs, status)?);
            compare(&l, *op, *case_insensitive, &r)
        }
    })
}

#[cfg(test)]
mod tests;
