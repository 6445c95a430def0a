//! Python's `repr` of the values OmniSQL prints in its prompts
//! (`f", example: {column_values}"` formats a Python list), written by hand
//! because matching OmniSQL byte for byte means matching CPython's rules:
//! `'text'` or `"it's"`, `307.0`, `1e-05`, `1e+16`.

use crate::schema::SampleValue;

/// `[v1, v2]` exactly as Python prints a list of these values.
pub fn python_list(values: &[SampleValue]) -> String {
    let items: Vec<String> = values.iter().map(python_value).collect();
    format!("[{}]", items.join(", "))
}

pub fn python_value(value: &SampleValue) -> String {
    match value {
        SampleValue::Integer(i) => i.to_string(),
        SampleValue::Real(f) => python_float(*f),
        SampleValue::Text(s) => python_str(s),
    }
}

/// CPython's `float.__repr__`: the shortest digits that round-trip, written
/// positionally while the decimal exponent lies in [-4, 16), otherwise in
/// scientific notation with a signed exponent of at least two digits; a
/// positional integral value gets `.0`.
pub fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` also prints the shortest round-trip digits: `d.ddde±x`.
    let sci = format!("{:e}", x);
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..16).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exp_sign}{:02}", exponent.abs());
    }
    // Position of the decimal point after the first `point` digits.
    let point = exponent + 1;
    let body = if point <= 0 {
        format!("0.{}{}", "0".repeat(point.unsigned_abs() as usize), digits)
    } else if point as usize >= digits.len() {
        format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

/// CPython's `str.__repr__`: single quotes unless the text holds a single
/// quote and no double quote; backslash escapes for the chosen quote, `\`,
/// `\t`, `\n`, `\r` and for characters Python does not consider printable.
pub fn python_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for ch in s.chars() {
        match ch {
            c if c == quote || c == '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if !is_python_printable(c) => {
                let code = c as u32;
                if code < 0x100 {
                    out.push_str(&format!("\\x{code:02x}"));
                } else if code < 0x10000 {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `str.isprintable` for one character: false for control characters,
/// separators other than the ASCII space, format characters and private-use
/// code points. Unassigned code points (which Python also escapes) are not
/// known without Unicode tables and are printed as they are.
fn is_python_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let code = c as u32;
    let format_or_private = matches!(
        code,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
            | 0xE000..=0xF8FF
            | 0xF0000..=0x10FFFF
    );
    !format_or_private
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        // Expected strings are what CPython 3 prints for repr(x).
        let cases = [
            (307.0, "307.0"),
            (11.5, "11.5"),
            (0.1, "0.1"),
            (4.55617, "4.55617"),
            (-2.5, "-2.5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e100, "1e+100"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for (x, expected) in cases {
            assert_eq!(python_float(x), expected, "repr({x:?})");
        }
    }

    #[test]
    fn strings_choose_quotes_and_escape_like_python() {
        assert_eq!(python_str("amc"), "'amc'");
        assert_eq!(python_str("JUNZI'S Store"), "\"JUNZI'S Store\"");
        assert_eq!(python_str(r#"say "hi""#), r#"'say "hi"'"#);
        assert_eq!(python_str(r#"it's "x""#), r#"'it\'s "x"'"#);
        assert_eq!(python_str("a\\b"), r"'a\\b'");
        assert_eq!(python_str("l1\nl2\tx\r"), r"'l1\nl2\tx\r'");
        assert_eq!(
            python_str("a\u{a0}\u{200b}\u{7f}\u{0}é"),
            r"'a\xa0\u200b\x7f\x00é'"
        );
        assert_eq!(python_str("日本 ✓"), "'日本 ✓'");
    }

    #[test]
    fn lists_mix_types_like_python() {
        let values = [
            SampleValue::Integer(1),
            SampleValue::Real(2.0),
            SampleValue::Text("1".into()),
        ];
        assert_eq!(python_list(&values), "[1, 2.0, '1']");
        assert_eq!(python_list(&[]), "[]");
    }
}
