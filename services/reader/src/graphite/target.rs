//! Target expressions as graphite-web's grammar (`render/grammar_unsafe.py`) reads
//! them: dotted paths with globs, calls with positional then keyword arguments,
//! numbers (`-1`, `2.5`, `1e3`), quoted strings (kept raw: `"\1 A"` is the four
//! characters graphite-web hands to `re.sub`), `true`/`false`, `None`, `inf`, and
//! pipes (`a.b|scale(2)` is `scale(a.b,2)`). Unlike graphite-web, trailing text is
//! an error, not ignored.

use std::fmt;

/// Deepest nesting of calls a target may have.
pub const MAX_DEPTH: usize = 32;
/// Longest target accepted.
pub const MAX_TARGET_LEN: usize = 16 * 1024;

/// A number as written: graphite-web keeps ints and floats apart (`str(100)` is
/// `100`, `str(2.0)` is `2.0`), and so do names built from them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    #[must_use]
    pub fn value(self) -> f64 {
        match self {
            #[allow(clippy::cast_precision_loss)] // graphite-web's float(int) does the same
            Self::Int(i) => i as f64,
            Self::Float(f) => f,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Path(String),
    Call(Call),
    Num(Num),
    Str(String),
    Bool(bool),
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub args: Vec<Expr>,
    pub kwargs: Vec<(String, Expr)>,
    /// Byte offset of the name in the target.
    pub at: usize,
}

/// Why a target does not parse, and where (byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.at)
    }
}

/// Parses a whole target.
///
/// # Errors
/// [`ParseError`] with the byte position at fault.
pub fn parse(target: &str) -> Result<Expr, ParseError> {
    if target.len() > MAX_TARGET_LEN {
        return Err(ParseError {
            at: MAX_TARGET_LEN,
            message: format!("target is longer than {MAX_TARGET_LEN} bytes"),
        });
    }
    let mut p = Parser {
        s: target.as_bytes(),
        i: 0,
    };
    p.ws();
    if p.i == p.s.len() {
        return Err(p.err("empty target"));
    }
    let e = p.expression(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err(&format!(
            "unexpected {:?}",
            String::from_utf8_lossy(&p.s[p.i..(p.i + 1).min(p.s.len())])
        )));
    }
    Ok(e)
}

/// The first path of an expression (graphite-web's `_getFirstPathExpression`: a
/// call's first argument, recursively): how `aliasByNode` finds nodes in
/// `scale(a.b.c,2)`.
#[must_use]
pub fn first_path(name: &str) -> Option<String> {
    let mut e = parse(name).ok()?;
    loop {
        match e {
            Expr::Path(p) => return Some(p),
            Expr::Call(c) => e = c.args.into_iter().next()?,
            _ => return None,
        }
    }
}

/// Bytes that end a path element (graphite-web's `symbols` and whitespace).
fn symbol(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'{' | b'}' | b',' | b'.' | b'\'' | b'"' | b'\\' | b'|'
    ) || b.is_ascii_whitespace()
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, message: &str) -> ParseError {
        ParseError {
            at: self.i,
            message: message.to_string(),
        }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ident_len(&self, from: usize) -> usize {
        let mut j = from;
        while j < self.s.len()
            && (self.s[j].is_ascii_alphabetic()
                || self.s[j] == b'_'
                || (j > from && self.s[j].is_ascii_digit()))
        {
            j += 1;
        }
        j - from
    }

    /// An expression: a call or a path, then pipes.
    fn expression(&mut self, depth: usize) -> Result<Expr, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(self.err(&format!("calls nest deeper than {MAX_DEPTH}")));
        }
        let mut e = self.call_or_path(depth)?;
        loop {
            let save = self.i;
            self.ws();
            if self.peek() != Some(b'|') {
                self.i = save;
                return Ok(e);
            }
            self.i += 1;
            self.ws();
            let at = self.i;
            match self.call_or_path(depth)? {
                Expr::Call(mut c) => {
                    c.args.insert(0, e);
                    e = Expr::Call(c);
                }
                _ => {
                    self.i = at;
                    return Err(self.err("a pipe must be followed by a function call"));
                }
            }
        }
    }

    fn call_or_path(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let start = self.i;
        let n = self.ident_len(start);
        if n > 0 {
            let mut j = start + n;
            while j < self.s.len() && self.s[j].is_ascii_whitespace() {
                j += 1;
            }
            if self.s.get(j) == Some(&b'(') {
                let name = String::from_utf8_lossy(&self.s[start..start + n]).into_owned();
                self.i = j + 1;
                return self.call_args(name, start, depth).map(Expr::Call);
            }
        }
        self.path()
    }

    fn call_args(&mut self, name: String, at: usize, depth: usize) -> Result<Call, ParseError> {
        let mut call = Call {
            name,
            args: Vec::new(),
            kwargs: Vec::new(),
            at,
        };
        self.ws();
        if self.peek() == Some(b')') {
            self.i += 1;
            return Ok(call);
        }
        loop {
            self.ws();
            // `name=` starts a keyword argument.
            let n = self.ident_len(self.i);
            let mut j = self.i + n;
            while j < self.s.len() && self.s[j].is_ascii_whitespace() {
                j += 1;
            }
            if n > 0 && self.s.get(j) == Some(&b'=') {
                let key = String::from_utf8_lossy(&self.s[self.i..self.i + n]).into_owned();
                self.i = j + 1;
                self.ws();
                let v = self.arg(depth)?;
                call.kwargs.push((key, v));
            } else {
                if !call.kwargs.is_empty() {
                    return Err(self.err("a positional argument after keyword arguments"));
                }
                let v = self.arg(depth)?;
                call.args.push(v);
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b')') => {
                    self.i += 1;
                    return Ok(call);
                }
                None => {
                    return Err(self.err(&format!("unclosed call of {}", call.name)));
                }
                Some(_) => return Err(self.err("expected `,` or `)`")),
            }
        }
    }

    /// Whether the byte after optional whitespace ends an argument.
    fn at_arg_end(&self, j: usize) -> bool {
        let mut j = j;
        while j < self.s.len() && self.s[j].is_ascii_whitespace() {
            j += 1;
        }
        matches!(self.s.get(j), None | Some(b',' | b')'))
    }

    fn arg(&mut self, depth: usize) -> Result<Expr, ParseError> {
        if let Some(q @ (b'"' | b'\'')) = self.peek() {
            return self.string(q);
        }
        if let Some((num, end)) = self.number() {
            if self.at_arg_end(end) {
                self.i = end;
                return Ok(Expr::Num(num));
            }
        }
        let n = self.ident_len(self.i);
        if n > 0 && self.at_arg_end(self.i + n) {
            let word = String::from_utf8_lossy(&self.s[self.i..self.i + n]).to_lowercase();
            let v = match word.as_str() {
                "true" => Some(Expr::Bool(true)),
                "false" => Some(Expr::Bool(false)),
                "none" => Some(Expr::None),
                "inf" => Some(Expr::Num(Num::Float(f64::INFINITY))),
                _ => None,
            };
            if let Some(v) = v {
                self.i += n;
                return Ok(v);
            }
        }
        self.expression(depth + 1)
    }

    fn string(&mut self, quote: u8) -> Result<Expr, ParseError> {
        let start = self.i;
        let mut j = start + 1;
        while j < self.s.len() {
            match self.s[j] {
                b'\\' => j += 2,
                b if b == quote => {
                    self.i = j + 1;
                    let body = String::from_utf8_lossy(&self.s[start + 1..j]).into_owned();
                    return Ok(Expr::Str(body));
                }
                b'\n' | b'\r' => break,
                _ => j += 1,
            }
        }
        Err(self.err("unclosed string"))
    }

    /// `-?\d+(\.\d+)?([eE]-?\d+)?` at the cursor, and where it ends.
    fn number(&self) -> Option<(Num, usize)> {
        let s = self.s;
        let mut j = self.i;
        if s.get(j) == Some(&b'-') {
            j += 1;
        }
        let digits = |mut j: usize| {
            let from = j;
            while j < s.len() && s[j].is_ascii_digit() {
                j += 1;
            }
            (j > from).then_some(j)
        };
        j = digits(j)?;
        let mut float = false;
        if s.get(j) == Some(&b'.') {
            if let Some(k) = digits(j + 1) {
                j = k;
                float = true;
            }
        }
        if matches!(s.get(j), Some(b'e' | b'E')) {
            let k = if s.get(j + 1) == Some(&b'-') {
                j + 2
            } else {
                j + 1
            };
            if let Some(k) = digits(k) {
                j = k;
                float = true;
            }
        }
        let text = std::str::from_utf8(&s[self.i..j]).ok()?;
        let num = if float {
            Num::Float(text.parse().ok()?)
        } else {
            match text.parse::<i64>() {
                Ok(i) => Num::Int(i),
                Err(_) => Num::Float(text.parse().ok()?),
            }
        };
        Some((num, j))
    }

    /// A path: elements split by `.`, each runs of metric bytes, `\`-escaped symbols
    /// and `{a,b}` alternatives.
    fn path(&mut self) -> Result<Expr, ParseError> {
        let start = self.i;
        let mut out = String::new();
        loop {
            let elem_start = self.i;
            loop {
                match self.peek() {
                    Some(b'\\') => {
                        let c = self.s.get(self.i + 1).copied();
                        match c {
                            Some(c) if symbol(c) && !c.is_ascii_whitespace() => {
                                out.push(c as char);
                                self.i += 2;
                            }
                            _ => return Err(self.err("invalid escape in path")),
                        }
                    }
                    Some(b'{') => {
                        let close = self.s[self.i..]
                            .iter()
                            .position(|&b| b == b'}')
                            .ok_or_else(|| self.err("unclosed `{` in path"))?;
                        let inner = &self.s[self.i + 1..self.i + close];
                        if inner
                            .iter()
                            .any(|&b| b != b',' && b != b'\\' && symbol(b) && b != b'.')
                        {
                            return Err(self.err("invalid `{…}` in path"));
                        }
                        out.push_str(&String::from_utf8_lossy(&self.s[self.i..=self.i + close]));
                        self.i += close + 1;
                    }
                    Some(b) if !symbol(b) => {
                        let from = self.i;
                        while self.i < self.s.len() && !symbol(self.s[self.i]) {
                            self.i += 1;
                        }
                        out.push_str(&String::from_utf8_lossy(&self.s[from..self.i]));
                    }
                    _ => break,
                }
            }
            if self.i == elem_start {
                return Err(if self.i == start {
                    self.err("expected a path, a function call or a value")
                } else {
                    self.err("empty path element")
                });
            }
            if self.peek() == Some(b'.') {
                out.push('.');
                self.i += 1;
            } else {
                return Ok(Expr::Path(out));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(e: &Expr) -> &Call {
        match e {
            Expr::Call(c) => c,
            other => panic!("not a call: {other:?}"),
        }
    }

    #[test]
    fn grafana_wrapping_keeps_the_backslash() {
        let e = parse(r#"aliasSub(sumSeries(a.*.b), "(^.*$)", "\1 A")"#).unwrap();
        let c = call(&e);
        assert_eq!(c.name, "aliasSub");
        assert_eq!(c.args[1], Expr::Str("(^.*$)".into()));
        assert_eq!(c.args[2], Expr::Str(r"\1 A".into()));
        assert_eq!(call(&c.args[0]).args[0], Expr::Path("a.*.b".into()));
    }

    #[test]
    fn values_keywords_and_pipes() {
        let e =
            parse("summarize(a.{x,y}.c, intervalString='1h', func=\"max\") | scale(2.5)").unwrap();
        let c = call(&e);
        assert_eq!(c.name, "scale");
        assert_eq!(c.args[1], Expr::Num(Num::Float(2.5)));
        let inner = call(&c.args[0]);
        assert_eq!(inner.args[0], Expr::Path("a.{x,y}.c".into()));
        assert_eq!(inner.kwargs[1], ("func".into(), Expr::Str("max".into())));
        let e = parse("f(1, -2, 1e3, true, None, inf, 12ab)").unwrap();
        let c = call(&e);
        assert_eq!(c.args[0], Expr::Num(Num::Int(1)));
        assert_eq!(c.args[1], Expr::Num(Num::Int(-2)));
        assert_eq!(c.args[2], Expr::Num(Num::Float(1000.0)));
        assert_eq!(c.args[3], Expr::Bool(true));
        assert_eq!(c.args[4], Expr::None);
        assert_eq!(c.args[6], Expr::Path("12ab".into()));
    }

    #[test]
    fn errors_say_where() {
        let e = parse("sumSeries(a.b").unwrap_err();
        assert_eq!(e.at, 13);
        assert!(e.message.contains("sumSeries"), "{e}");
        assert_eq!(parse("a.b)").unwrap_err().at, 3);
        assert_eq!(parse("a..b").unwrap_err().at, 2);
        assert!(parse("f(x=1, 2)").is_err());
        assert!(parse("f('abc)").is_err());
        let deep = "f(".repeat(40) + "a" + &")".repeat(40);
        assert!(parse(&deep).unwrap_err().message.contains("deeper"));
        assert_eq!(
            first_path("scale(offset(a.b.c,1),2)").as_deref(),
            Some("a.b.c")
        );
    }
}
