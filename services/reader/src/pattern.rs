//! Series patterns (globs) as Graphite writes them: `*` and `?` within one dotted
//! segment, `[a-z0-9]` character classes, `{a,b}` alternatives. Shared by the native
//! routes now and by the Graphite `/render` and `/metrics/find` routes next.

use thiserror::Error;

/// Bytes that make a pattern a glob rather than a series name.
const META: &[u8] = b"*?[{";

/// A malformed pattern.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    #[error("unclosed `{open}` at byte {at}")]
    Unclosed { open: char, at: usize },
    #[error("nested `{{` at byte {at} (alternatives do not nest)")]
    Nested { at: usize },
    #[error("pattern is empty")]
    Empty,
    #[error("pattern is {len} bytes long, over the limit of {limit}")]
    TooLong { len: usize, limit: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `*`: any bytes but `.`.
    Star,
    /// `?`: one byte but `.`.
    Any,
    /// `[...]`: one byte in (or, negated with `!`/`^`, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
    /// `{a,b}`: one of the alternatives (each a plain sequence of tokens).
    Alt(Vec<Vec<Token>>),
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    tokens: Vec<Token>,
}

/// Longest pattern accepted: the longest series name (255) with room for alternatives.
pub const MAX_PATTERN_LEN: usize = 1_024;

impl Pattern {
    /// # Errors
    /// [`PatternError`] for an empty, too long or malformed pattern.
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        if source.is_empty() {
            return Err(PatternError::Empty);
        }
        if source.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong {
                len: source.len(),
                limit: MAX_PATTERN_LEN,
            });
        }
        let bytes = source.as_bytes();
        let (tokens, end) = parse_seq(bytes, 0, false)?;
        debug_assert_eq!(end, bytes.len());
        Ok(Self {
            source: source.to_string(),
            tokens,
        })
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern is a plain name (no glob syntax).
    #[must_use]
    pub fn is_literal(&self) -> bool {
        !self.source.bytes().any(|b| META.contains(&b))
    }

    /// The longest plain prefix every match starts with.
    #[must_use]
    pub fn literal_prefix(&self) -> &str {
        let end = self
            .source
            .bytes()
            .position(|b| META.contains(&b))
            .unwrap_or(self.source.len());
        &self.source[..end]
    }

    /// Whether `name` matches the whole pattern.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        match_seq(&self.tokens, name.as_bytes(), &[])
    }
}

fn parse_seq(
    bytes: &[u8],
    mut i: usize,
    in_alt: bool,
) -> Result<(Vec<Token>, usize), PatternError> {
    let mut out = Vec::new();
    while i < bytes.len() {
        match bytes[i] {
            b'*' => {
                // `**` is `*`: both match any run within a segment.
                if out.last() != Some(&Token::Star) {
                    out.push(Token::Star);
                }
                i += 1;
            }
            b'?' => {
                out.push(Token::Any);
                i += 1;
            }
            b'[' => {
                let close = bytes[i + 1..]
                    .iter()
                    .position(|&b| b == b']')
                    .ok_or(PatternError::Unclosed { open: '[', at: i })?
                    + i
                    + 1;
                let mut body = &bytes[i + 1..close];
                let negated = matches!(body.first(), Some(b'!' | b'^'));
                if negated {
                    body = &body[1..];
                }
                let mut ranges = Vec::new();
                let mut j = 0;
                while j < body.len() {
                    if j + 2 < body.len() && body[j + 1] == b'-' {
                        ranges.push((body[j].min(body[j + 2]), body[j].max(body[j + 2])));
                        j += 3;
                    } else {
                        ranges.push((body[j], body[j]));
                        j += 1;
                    }
                }
                out.push(Token::Class { negated, ranges });
                i = close + 1;
            }
            b'{' => {
                if in_alt {
                    return Err(PatternError::Nested { at: i });
                }
                let open = i;
                let mut alts = Vec::new();
                i += 1;
                loop {
                    let (alt, end) = parse_seq(bytes, i, true)?;
                    alts.push(alt);
                    match bytes.get(end) {
                        Some(b',') => i = end + 1,
                        Some(b'}') => {
                            i = end + 1;
                            break;
                        }
                        _ => {
                            return Err(PatternError::Unclosed {
                                open: '{',
                                at: open,
                            })
                        }
                    }
                }
                out.push(Token::Alt(alts));
            }
            b',' | b'}' if in_alt => return Ok((out, i)),
            b => {
                out.push(Token::Byte(b));
                i += 1;
            }
        }
    }
    Ok((out, i))
}

/// Matches `tokens` then `rest` (what follows an alternative) against `name`.
fn match_seq(tokens: &[Token], name: &[u8], rest: &[&[Token]]) -> bool {
    let Some((first, tail)) = tokens.split_first() else {
        return match rest.split_first() {
            Some((next, more)) => match_seq(next, name, more),
            None => name.is_empty(),
        };
    };
    match first {
        Token::Byte(b) => name.first() == Some(b) && match_seq(tail, &name[1..], rest),
        Token::Any => name.first().is_some_and(|&c| c != b'.') && match_seq(tail, &name[1..], rest),
        Token::Class { negated, ranges } => {
            name.first().is_some_and(|&c| {
                c != b'.' && ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) != *negated
            }) && match_seq(tail, &name[1..], rest)
        }
        Token::Star => {
            let run = name.iter().position(|&c| c == b'.').unwrap_or(name.len());
            (0..=run).any(|n| match_seq(tail, &name[n..], rest))
        }
        Token::Alt(alts) => alts.iter().any(|alt| {
            let mut more = Vec::with_capacity(rest.len() + 1);
            more.push(tail);
            more.extend_from_slice(rest);
            match_seq(alt, name, &more)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, n: &str) -> bool {
        Pattern::parse(p).unwrap().matches(n)
    }

    #[test]
    fn globs_match_within_segments() {
        assert!(m("host.*.cpu", "host.a1.cpu"));
        assert!(!m("host.*.cpu", "host.a.b.cpu"));
        assert!(m("host.*", "host.a"));
        assert!(!m("host.*", "host.a.cpu"));
        assert!(m("a.?b", "a.xb"));
        assert!(!m("a.?b", "a..b"));
        assert!(m("cpu.[0-9]", "cpu.7"));
        assert!(!m("cpu.[!0-9]", "cpu.7"));
        assert!(m("cpu.{user,system}.x", "cpu.system.x"));
        assert!(!m("cpu.{user,system}.x", "cpu.idle.x"));
        assert!(m("{a,b}*.c", "bzz.c"));
        assert!(m("loadavg*", "loadavg15"));
        assert!(m("x.{,y}z", "x.z"));
    }

    #[test]
    fn literal_prefix_and_errors() {
        let p = Pattern::parse("host.web*.cpu").unwrap();
        assert_eq!(p.literal_prefix(), "host.web");
        assert!(!p.is_literal());
        assert!(Pattern::parse("a.b").unwrap().is_literal());
        assert_eq!(
            Pattern::parse("a[bc").unwrap_err(),
            PatternError::Unclosed { open: '[', at: 1 }
        );
        assert_eq!(
            Pattern::parse("a{b,c").unwrap_err(),
            PatternError::Unclosed { open: '{', at: 1 }
        );
        assert_eq!(
            Pattern::parse("{a,{b}}").unwrap_err(),
            PatternError::Nested { at: 3 }
        );
        assert_eq!(Pattern::parse("").unwrap_err(), PatternError::Empty);
    }

    proptest! {
        #[test]
        fn a_literal_matches_itself_only(name in "[a-z0-9._-]{1,40}", other in "[a-z0-9._-]{1,40}") {
            let p = Pattern::parse(&name).unwrap();
            prop_assert!(p.matches(&name));
            prop_assert_eq!(p.matches(&other), name == other);
        }

        #[test]
        fn every_match_starts_with_the_literal_prefix(pat in "[a.*?{},\\[\\]b-]{1,20}", name in "[ab.]{0,12}") {
            if let Ok(p) = Pattern::parse(&pat) {
                if p.matches(&name) {
                    prop_assert!(name.starts_with(p.literal_prefix()));
                }
            }
        }

        #[test]
        fn star_segments_match_like_a_split(segs in proptest::collection::vec("[a-c]{1,3}", 1..5), star in 0usize..5) {
            let name = segs.join(".");
            let star = star % segs.len();
            let pat: Vec<&str> = segs.iter().enumerate().map(|(i, s)| if i == star { "*" } else { s.as_str() }).collect();
            prop_assert!(m(&pat.join("."), &name));
        }
    }
}
