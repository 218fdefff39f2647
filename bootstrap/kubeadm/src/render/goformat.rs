//! Go formatting that CABPK's output depends on byte for byte: `%q` (strconv.Quote), the
//! template helper `Indent`, and `time.Duration.String()`.

use std::fmt::Write;

/// `fmt.Sprintf("%q", s)`: a double-quoted Go string literal. Printable characters stay as they
/// are (including non-ASCII), the usual escapes are used for `\a\b\f\n\r\t\v`, other control
/// characters become `\xHH` (ASCII) or `\uHHHH`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if !is_go_printable(c) => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint` for the characters that matter in commands: everything but control
/// and format characters, separators other than the ASCII space, and unassigned/private use.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    // Format characters (Cf) commonly met in text, private use and non-characters.
    !matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x200B..=0x200F | 0x202A..=0x202E |
        0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF |
        0xFFFE | 0xFFFF | 0xF0000..=0x10FFFF)
}

/// CABPK's `Indent n`: every `\n`-separated line prefixed with n spaces, so a trailing newline
/// leaves a last line made only of spaces.
pub fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    let mut out = String::with_capacity(s.len() + n * 8);
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&pad);
        out.push_str(line);
    }
    out
}

/// `time.Duration(seconds * time.Second).String()`: `0s`, `45s`, `4m0s`, `8760h0m0s`.
pub fn duration(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".into();
    }
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{sign}{m}m{sec}s")
    } else {
        format!("{sign}{sec}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_strconv() {
        // Expected values produced by Go's strconv.Quote.
        assert_eq!(quote("echo hi"), r#""echo hi""#);
        assert_eq!(quote(r#"echo "a" > /b\c"#), r#""echo \"a\" > /b\\c""#);
        assert_eq!(quote("a\tb\nc\r\u{7}\u{8}\u{c}\u{b}"), r#""a\tb\nc\r\a\b\f\v""#);
        assert_eq!(quote("\u{1}\u{7f}"), r#""\x01\x7f""#);
        assert_eq!(quote("héllo ✓ 日本"), "\"héllo ✓ 日本\"");
        assert_eq!(quote("\u{200b}\u{feff}"), r#""\u200b\ufeff""#);
        assert_eq!(quote("\u{a0}"), r#""\u00a0""#);
        assert_eq!(quote("'single'"), r#""'single'""#);
        assert_eq!(quote(""), r#""""#);
    }

    #[test]
    fn indent_keeps_trailing_blank_line() {
        assert_eq!(indent("a\nb", 2), "  a\n  b");
        assert_eq!(indent("a\n", 6), "      a\n      ");
        assert_eq!(indent("", 3), "   ");
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(240), "4m0s");
        assert_eq!(duration(3661), "1h1m1s");
        assert_eq!(duration(365 * 86400), "8760h0m0s");
    }
}
