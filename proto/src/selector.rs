//! The binding-rule selector language: which verified JWT claims a binding rule
//! matches. Deliberately tiny (Consul's selectors are a full expression language;
//! these are conjunctions of claim tests), parsed here so the API edge and the
//! leader's admission check refuse a bad selector with the same words; the registry
//! evaluates a parsed selector against a JWT's claims.
//!
//! ```text
//! selector := ""                        (matches every verified JWT)
//!           | term ( "and" term )*
//! term     := CLAIM "=" VALUE           (a string, number or boolean claim equal to VALUE)
//!           | CLAIM "!=" VALUE          (absent, or not equal)
//!           | CLAIM "contains" VALUE    (an array claim with an element equal to VALUE)
//! CLAIM    := a top-level claim name: letters, digits and _ - . : /
//! VALUE    := a bare word (no spaces, quotes, '=' or '!') | "a \"quoted\" string"
//! ```

use std::fmt;

/// Longest selector, in bytes.
pub const MAX_SELECTOR_LEN: usize = 1024;
/// Most terms in one selector.
pub const MAX_SELECTOR_TERMS: usize = 16;

/// How a term compares its claim with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    Contains,
}

/// One claim test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub claim: String,
    pub op: Op,
    pub value: String,
}

/// A parsed selector: every term must hold (none: matches everything).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Eq,
    NotEq,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "{w:?}"),
            Token::Quoted(q) => write!(f, "\"{q}\" (quoted)"),
            Token::Eq => f.write_str("'='"),
            Token::NotEq => f.write_str("'!='"),
        }
    }
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err("a quoted value is not closed".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e @ ('"' | '\\')) => s.push(e),
                        _ => return Err("in quotes, '\\' may only escape '\"' or '\\'".into()),
                    },
                    Some(ch) => s.push(ch),
                }
            }
            out.push(Token::Quoted(s));
        } else if c == '=' {
            chars.next();
            // `==` is accepted as a spelling of `=`.
            if chars.peek() == Some(&'=') {
                chars.next();
            }
            out.push(Token::Eq);
        } else if c == '!' {
            chars.next();
            if chars.next() != Some('=') {
                return Err("'!' must be followed by '=' (\"!=\")".into());
            }
            out.push(Token::NotEq);
        } else {
            let mut w = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || matches!(ch, '"' | '=' | '!') {
                    break;
                }
                w.push(ch);
                chars.next();
            }
            out.push(Token::Word(w));
        }
    }
    Ok(out)
}

fn is_claim_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'))
}

impl Selector {
    /// Parses `text`; the error is the rule it broke, for a `ValidationError`.
    pub fn parse(text: &str) -> Result<Selector, String> {
        if text.len() > MAX_SELECTOR_LEN {
            return Err(format!(
                "must be at most {MAX_SELECTOR_LEN} bytes (got {})",
                text.len()
            ));
        }
        let mut toks = tokens(text)?.into_iter();
        let mut terms = Vec::new();
        let syntax =
            "terms are CLAIM=VALUE, CLAIM!=VALUE or CLAIM contains VALUE, joined by \"and\"";
        while let Some(first) = toks.next() {
            if !terms.is_empty() {
                if first != Token::Word("and".into()) {
                    return Err(format!("expected \"and\" between terms, found {first}"));
                }
                let Some(next) = toks.next() else {
                    return Err("a selector cannot end with \"and\"".into());
                };
                terms.push(Self::term(next, &mut toks, syntax)?);
            } else {
                terms.push(Self::term(first, &mut toks, syntax)?);
            }
            if terms.len() > MAX_SELECTOR_TERMS {
                return Err(format!("at most {MAX_SELECTOR_TERMS} terms"));
            }
        }
        Ok(Selector { terms })
    }

    fn term(
        claim: Token,
        rest: &mut impl Iterator<Item = Token>,
        syntax: &str,
    ) -> Result<Term, String> {
        let claim = match claim {
            Token::Word(w) if is_claim_name(&w) => w,
            other => {
                return Err(format!(
                    "expected a claim name (letters, digits, _ - . : /), found {other}; {syntax}"
                ))
            }
        };
        let op = match rest.next() {
            Some(Token::Eq) => Op::Equals,
            Some(Token::NotEq) => Op::NotEquals,
            Some(Token::Word(w)) if w == "contains" => Op::Contains,
            Some(other) => {
                return Err(format!(
                    "after claim {claim:?} expected '=', '!=' or \"contains\", found {other}"
                ))
            }
            None => {
                return Err(format!(
                    "claim {claim:?} is not compared with anything; {syntax}"
                ))
            }
        };
        let value = match rest.next() {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => w,
            Some(other) => return Err(format!("expected a value after {claim:?}, found {other}")),
            None => return Err(format!("claim {claim:?} has no value to compare with")),
        };
        Ok(Term { claim, op, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(claim: &str, op: Op, value: &str) -> Term {
        Term {
            claim: claim.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn terms_joined_by_and() {
        assert_eq!(Selector::parse("").unwrap().terms, vec![]);
        assert_eq!(Selector::parse("  ").unwrap().terms, vec![]);
        assert_eq!(
            Selector::parse("service=web").unwrap().terms,
            vec![term("service", Op::Equals, "web")]
        );
        assert_eq!(
            Selector::parse(r#"groups contains ops and sub != "bad \"guy\"" and env==prod"#)
                .unwrap()
                .terms,
            vec![
                term("groups", Op::Contains, "ops"),
                term("sub", Op::NotEquals, "bad \"guy\""),
                term("env", Op::Equals, "prod"),
            ]
        );
        assert_eq!(
            Selector::parse(r#"https://example.com/team = "a and b""#)
                .unwrap()
                .terms,
            vec![term("https://example.com/team", Op::Equals, "a and b")]
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (bad, says) in [
            ("service", "not compared"),
            ("service=", "no value"),
            ("service=web and", "end with \"and\""),
            ("service=web or sub=x", "expected \"and\""),
            ("service ~ web", "expected '=', '!=' or \"contains\""),
            ("\"service\"=web", "expected a claim name"),
            ("service=\"web", "not closed"),
            ("service ! web", "'!' must be followed"),
            ("=web", "expected a claim name"),
        ] {
            let e = Selector::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let long = vec!["a=b"; MAX_SELECTOR_TERMS + 1].join(" and ");
        assert!(Selector::parse(&long).unwrap_err().contains("at most"));
    }
}
