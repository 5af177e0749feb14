//! Bounds on how deeply a PromQL query nests, checked before and after parsing.
//!
//! Parsing (`promql-parser`) and evaluation ([`super::eval`]) recurse over the
//! expression tree, on a stack of a few MiB (a tokio worker's is 2 MiB): a query of a few
//! kilobytes such as 3,000 nested calls (`abs(abs(…))`) overflows the parser's stack, and
//! one of 600 chained operators (`1+1+…`) or 10,000 parentheses overflows the
//! evaluator's — and a stack overflow aborts the whole process, every request with it.
//! So a query is refused (400 `bad_data`) unless:
//!
//! 1. **before parsing** (a lexical scan that skips string literals and comments):
//!    brackets `(`, `[`, `{` nest at most [`MAX_DEPTH`] deep, and the query holds at
//!    most [`MAX_OPERATORS`] operators, which bounds every tree the parser builds to a
//!    depth its own recursion (and the tree's drop) handles;
//! 2. **after parsing**: the expression tree is at most [`MAX_DEPTH`] deep (measured
//!    without recursion), which the evaluator handles with room to spare.
//!
//! Real queries nest a few levels (Grafana's deepest are about ten).

use promql_parser::parser::Expr;

/// Deepest bracket nesting, and deepest expression tree, a query may have.
pub(crate) const MAX_DEPTH: usize = 128;

/// Most operators (`+ - * / % ^ == != < > <= >=`, `and`, `or`, `unless`, `atan2`) in a query.
pub(crate) const MAX_OPERATORS: usize = 4096;

/// Checks the query text (step 1). `Err` is the reason.
pub(crate) fn check_text(q: &str) -> Result<(), String> {
    let b = q.as_bytes();
    let (mut depth, mut deepest, mut operators) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            quote @ (b'"' | b'\'' | b'`') => {
                // A string: to its closing quote (backslash escapes, except in `raw`).
                i += 1;
                while i < b.len() && b[i] != quote {
                    if b[i] == b'\\' && quote != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'=' | b'!' | b'<' | b'>' => operators += 1,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                if matches!(&q[start..i], "and" | "or" | "unless" | "atan2") {
                    operators += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if deepest > MAX_DEPTH {
        return Err(format!(
            "brackets nest {deepest} deep, deeper than carat's limit of {MAX_DEPTH}"
        ));
    }
    if operators > MAX_OPERATORS {
        return Err(format!(
            "the query holds {operators} operators, more than carat's limit of {MAX_OPERATORS}"
        ));
    }
    Ok(())
}

/// Checks a parsed expression (step 2), without recursion. `Err` is the reason.
pub(crate) fn check_tree(expr: &Expr) -> Result<(), String> {
    let mut todo: Vec<(&Expr, usize)> = vec![(expr, 1)];
    while let Some((e, d)) = todo.pop() {
        if d > MAX_DEPTH {
            return Err(format!(
                "the expression nests deeper than carat's limit of {MAX_DEPTH}"
            ));
        }
        match e {
            Expr::Aggregate(a) => {
                todo.push((&a.expr, d + 1));
                if let Some(p) = &a.param {
                    todo.push((p, d + 1));
                }
            }
            Expr::Unary(u) => todo.push((&u.expr, d + 1)),
            Expr::Binary(b) => {
                todo.push((&b.lhs, d + 1));
                todo.push((&b.rhs, d + 1));
            }
            Expr::Paren(p) => todo.push((&p.expr, d + 1)),
            Expr::Subquery(s) => todo.push((&s.expr, d + 1)),
            Expr::Call(c) => todo.extend(c.args.args.iter().map(|a| (a.as_ref(), d + 1))),
            Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::VectorSelector(_)
            | Expr::MatrixSelector(_)
            | Expr::Extension(_) => {}
        }
    }
    Ok(())
}

/// Parses `q` within the bounds above.
///
/// # Errors
/// The reason, as `promql_parser::parser::parse`'s errors are: text.
pub(crate) fn parse(q: &str) -> Result<Expr, String> {
    check_text(q)?;
    let expr = promql_parser::parser::parse(q)?;
    check_tree(&expr)?;
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_a_small_stack(q: String) -> Result<(), String> {
        // What a tokio worker has; a debug build's frames are the largest.
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || parse(&q).map(|_| ()))
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn real_queries_pass() {
        for q in [
            "sum by (job) (rate(http_requests_total{code=~\"5..\", path!=\"/(a|b)\"}[5m])) / ignoring(code) group_left sum by (job) (rate(http_requests_total[5m]))",
            "histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) > bool 0.5 and on() vector(1)",
            "-1 - -2 + 3 * 4 ^ 2 % 5 atan2 1",
            "up{job=\"((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((\"} # ((((((((((((((((((",
        ] {
            assert_eq!(on_a_small_stack(q.to_string()), Ok(()), "{q}");
        }
        let ok = format!(
            "{}up{}",
            "(".repeat(MAX_DEPTH - 1),
            ")".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(on_a_small_stack(ok), Ok(()));
    }

    #[test]
    fn deep_queries_are_refused_without_overflowing() {
        for q in [
            format!("{}up{}", "(".repeat(10_000), ")".repeat(10_000)),
            format!("{}up{}", "abs(".repeat(5_000), ")".repeat(5_000)),
            format!(
                "{}up{}",
                "sum(".repeat(MAX_DEPTH + 1),
                ")".repeat(MAX_DEPTH + 1)
            ),
            format!("1{}", "+1".repeat(MAX_DEPTH + 1)),
            format!("1{}", "+1".repeat(100_000)),
            format!("{}1", "-".repeat(100_000)),
            format!("vector(1){}", " and vector(1)".repeat(MAX_DEPTH + 1)),
            format!("{}up", "-".repeat(MAX_DEPTH + 1)),
        ] {
            let r = on_a_small_stack(q.clone());
            assert!(r.is_err(), "{}…", &q[..40]);
        }
    }
}
