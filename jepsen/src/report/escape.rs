//! HTML escaping. Everything the report shows comes from the history or the checkers
//! (keys, errors, evidence lines), so any of it may hold `<`, `&` or quotes and must
//! never turn into markup.

use std::fmt;

/// Displays a string with `& < > " '` escaped: safe as element text (HTML or SVG) and
/// inside double- or single-quoted attribute values.
pub(super) struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        // Copy the runs between special characters in one piece: report pages hold
        // megabytes of text, most of it needing no escape.
        let mut from = 0;
        for (i, c) in s.char_indices() {
            let entity = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&s[from..i])?;
            f.write_str(entity)?;
            from = i + c.len_utf8();
        }
        f.write_str(&s[from..])
    }
}

#[cfg(test)]
mod tests {
    use super::Esc;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            Esc(r#"<script>alert("x" + 'y')</script> & é"#).to_string(),
            "&lt;script&gt;alert(&quot;x&quot; + &#39;y&#39;)&lt;/script&gt; &amp; é"
        );
        assert_eq!(Esc("plain").to_string(), "plain");
        assert_eq!(Esc("").to_string(), "");
    }
}
