//! Finds the elements of one top-level JSON array without parsing them, so
//! that the elements can be parsed in parallel and memory stays independent
//! of the file's size.
//!
//! Written by hand because no JSON crate exposes element boundaries of a
//! memory-mapped array: serde_json's and sonic-rs's streaming readers parse
//! every element on the calling thread, which would make that thread the
//! bottleneck. The scanner only tracks strings (with escapes) and bracket
//! depth; `memchr` skips through string bodies, where almost all bytes are.

use memchr::memchr2;

/// One element of the array: its index and its byte range in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub index: u64,
    pub start: usize,
    pub end: usize,
    /// The element is an object in which every value is a string or `null`
    /// (if it is valid JSON at all), as seen from the bytes outside strings.
    /// Lets the parser skip fields it drops without checking their type.
    pub strings_only: bool,
}

/// Why the array itself (not one of its elements) is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StructureError {
    /// The file does not start with `[`.
    NotAnArray { offset: usize },
    /// The file ends inside the element that starts at `offset` (or before
    /// the closing `]` when `offset` is the end of the file).
    Truncated { index: u64, offset: usize },
    /// Something else than `,` or `]` after an element: the records after it
    /// cannot be found reliably.
    Garbage {
        index: u64,
        offset: usize,
        found: String,
    },
    /// Bytes after the closing `]`.
    Trailing {
        index: u64,
        offset: usize,
        found: String,
    },
}

impl StructureError {
    pub fn offset(&self) -> usize {
        match self {
            StructureError::NotAnArray { offset }
            | StructureError::Truncated { offset, .. }
            | StructureError::Garbage { offset, .. }
            | StructureError::Trailing { offset, .. } => *offset,
        }
    }

    pub fn index(&self) -> u64 {
        match self {
            StructureError::NotAnArray { .. } => 0,
            StructureError::Truncated { index, .. }
            | StructureError::Garbage { index, .. }
            | StructureError::Trailing { index, .. } => *index,
        }
    }

    pub fn message(&self) -> String {
        match self {
            StructureError::NotAnArray { .. } => "expected a JSON array `[...]`".into(),
            StructureError::Truncated { .. } => {
                "the file ends inside this record (truncated file?)".into()
            }
            StructureError::Garbage { found, .. } => {
                format!("unexpected `{found}` where `,` or `]` should be")
            }
            StructureError::Trailing { found, .. } => {
                format!("unexpected `{found}` after the closing `]` of the array")
            }
        }
    }
}

/// Iterates over the elements of the array in `bytes`, yielding their spans;
/// the first structural problem is yielded as an error and ends iteration.
pub struct ArrayScanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    next_index: u64,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    /// After `[` or `,`: an element must follow (or `]` right after `[`).
    Element {
        first: bool,
    },
    /// After an element: `,` or `]` must follow.
    Separator,
    /// After the closing `]`: only whitespace may follow.
    Closed,
    Done,
}

impl<'a> ArrayScanner<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            next_index: 0,
            state: State::Start,
        }
    }

    /// Where the scanner is, for progress reporting.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn skip_whitespace(&mut self) {
        while let Some(b) = self.bytes.get(self.pos) {
            if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Ends the scan on bytes that do not belong there; returns a short
    /// excerpt of them for the message.
    fn stop_at(&mut self, offset: usize) -> String {
        self.state = State::Done;
        let end = (offset + 20).min(self.bytes.len());
        String::from_utf8_lossy(&self.bytes[offset..end]).into_owned()
    }

    fn garbage(&mut self, offset: usize) -> StructureError {
        let found = self.stop_at(offset);
        StructureError::Garbage {
            index: self.next_index,
            offset,
            found,
        }
    }

    /// The end (exclusive) of the value starting at `start` and whether it is
    /// an object of strings and nulls only (see [`Span::strings_only`]), or
    /// `None` when the file ends first.
    fn value_end(&self, start: usize) -> Option<(usize, bool)> {
        let bytes = self.bytes;
        let mut pos = start;
        let mut depth = 0usize;
        let mut strings_only = bytes.get(start) == Some(&b'{');
        loop {
            let b = *bytes.get(pos)?;
            match b {
                b'"' => {
                    pos = string_end(bytes, pos + 1)?;
                    if depth == 0 {
                        return Some((pos, false));
                    }
                    continue;
                }
                b'{' | b'[' => {
                    // Only the element's own brace may open at depth 0.
                    strings_only &= depth == 0;
                    depth += 1;
                }
                b'}' | b']' => {
                    if depth == 0 {
                        return Some((pos, false));
                    }
                    depth -= 1;
                    if depth == 0 {
                        return Some((pos + 1, strings_only));
                    }
                }
                b',' | b' ' | b'\n' | b'\r' | b'\t' if depth == 0 => return Some((pos, false)),
                // Between strings, an object of strings and nulls has only
                // separators and the letters of `null`; any other value
                // (number, true, false) shows a byte outside this set.
                b',' | b':' | b' ' | b'\n' | b'\r' | b'\t' | b'n' | b'u' | b'l' => {}
                _ => strings_only = false,
            }
            pos += 1;
        }
    }
}

/// The position just after the closing quote of a string whose body starts
/// at `pos`.
fn string_end(bytes: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let found = pos + memchr2(b'"', b'\\', &bytes[pos..])?;
        if bytes[found] == b'"' {
            return Some(found + 1);
        }
        // A backslash escapes exactly the next byte (`\uXXXX` has no quote).
        pos = found + 2;
        if pos > bytes.len() {
            return None;
        }
    }
}

impl Iterator for ArrayScanner<'_> {
    type Item = Result<Span, StructureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.state {
                State::Done => return None,
                State::Start => {
                    if self.bytes.starts_with(b"\xEF\xBB\xBF") {
                        self.pos = 3;
                    }
                    self.skip_whitespace();
                    match self.bytes.get(self.pos) {
                        Some(b'[') => {
                            self.pos += 1;
                            self.state = State::Element { first: true };
                        }
                        None => {
                            self.state = State::Done;
                            return Some(Err(StructureError::Truncated {
                                index: 0,
                                offset: self.pos,
                            }));
                        }
                        Some(_) => {
                            self.state = State::Done;
                            return Some(Err(StructureError::NotAnArray { offset: self.pos }));
                        }
                    }
                }
                State::Element { first } => {
                    self.skip_whitespace();
                    let start = self.pos;
                    match self.bytes.get(start) {
                        None => {
                            self.state = State::Done;
                            return Some(Err(StructureError::Truncated {
                                index: self.next_index,
                                offset: start,
                            }));
                        }
                        Some(b']') if first => {
                            self.pos += 1;
                            self.state = State::Closed;
                            continue;
                        }
                        Some(b']' | b',') => return Some(Err(self.garbage(start))),
                        Some(_) => {}
                    }
                    let Some((end, strings_only)) = self.value_end(start) else {
                        self.state = State::Done;
                        return Some(Err(StructureError::Truncated {
                            index: self.next_index,
                            offset: start,
                        }));
                    };
                    let span = Span {
                        index: self.next_index,
                        start,
                        end,
                        strings_only,
                    };
                    self.next_index += 1;
                    self.pos = end;
                    self.state = State::Separator;
                    return Some(Ok(span));
                }
                State::Separator => {
                    self.skip_whitespace();
                    match self.bytes.get(self.pos) {
                        Some(b',') => {
                            self.pos += 1;
                            self.state = State::Element { first: false };
                        }
                        Some(b']') => {
                            self.pos += 1;
                            self.state = State::Closed;
                        }
                        None => {
                            self.state = State::Done;
                            return Some(Err(StructureError::Truncated {
                                index: self.next_index,
                                offset: self.pos,
                            }));
                        }
                        Some(_) => return Some(Err(self.garbage(self.pos))),
                    }
                }
                State::Closed => {
                    self.skip_whitespace();
                    if self.pos < self.bytes.len() {
                        let offset = self.pos;
                        let found = self.stop_at(offset);
                        return Some(Err(StructureError::Trailing {
                            index: self.next_index,
                            offset,
                            found,
                        }));
                    }
                    self.state = State::Done;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> Vec<Result<(u64, String), StructureError>> {
        ArrayScanner::new(text.as_bytes())
            .map(|r| r.map(|s| (s.index, text[s.start..s.end].to_string())))
            .collect()
    }

    #[test]
    fn finds_elements_with_strings_escapes_and_nesting() {
        let text = r#" [ {"a": "x]}\"," , "b": [1, {"c": "\\"}]}, {"d":"é"} ,3,"s" ] "#;
        let got: Vec<_> = scan(text).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(
            got,
            vec![
                (0, r#"{"a": "x]}\"," , "b": [1, {"c": "\\"}]}"#.to_string()),
                (1, r#"{"d":"é"}"#.to_string()),
                (2, "3".to_string()),
                (3, r#""s""#.to_string()),
            ]
        );
        assert!(scan("[]").is_empty());
        assert!(scan("\u{feff}[ ]\n").is_empty());
    }

    #[test]
    fn marks_objects_whose_values_are_all_strings_or_null() {
        let text = r#"[{"a": "x:1,{[", "b" : null},{"a":"x","n":1},{"a":{"b":"c"}},{"a":["x"]},
            {"a":true},{"a":false},{"a":-2},"s",{}]"#;
        let got: Vec<bool> = ArrayScanner::new(text.as_bytes())
            .map(|s| s.unwrap().strings_only)
            .collect();
        assert_eq!(
            got,
            [true, false, false, false, false, false, false, false, true]
        );
    }

    #[test]
    fn reports_truncation_with_the_record_that_was_cut() {
        let text = r#"[{"a":1},{"b":"unfinished"#;
        let got = scan(text);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1],
            Err(StructureError::Truncated {
                index: 1,
                offset: 9
            })
        );
        assert_eq!(
            scan(r#"[{"a":1}"#)[1],
            Err(StructureError::Truncated {
                index: 1,
                offset: 8
            })
        );
        assert!(matches!(scan("")[0], Err(StructureError::Truncated { .. })));
    }

    #[test]
    fn reports_garbage_after_the_array_and_between_elements() {
        let got = scan(r#"[{"a":1}] xyz"#);
        assert!(got[0].is_ok());
        match &got[1] {
            Err(StructureError::Trailing { offset, found, .. }) => {
                assert_eq!(*offset, 10);
                assert_eq!(found, "xyz");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(got.len(), 2);
        assert!(matches!(
            scan(r#"[{"a":1} {"b":2}]"#)[1],
            Err(StructureError::Garbage { offset: 9, .. })
        ));
        assert!(matches!(
            scan(r#"[{"a":1},]"#)[1],
            Err(StructureError::Garbage { index: 1, .. })
        ));
        assert!(matches!(
            scan(r#"{"a":1}"#)[0],
            Err(StructureError::NotAnArray { offset: 0 })
        ));
    }
}
