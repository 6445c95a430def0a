//! An incremental SQLite tokenizer: text arrives in arbitrary pieces (a
//! model's token may end inside a word, a number or a string), and a token is
//! handed on only once the next character shows where it ends.

/// One SQL token. Words are lower-cased (SQLite folds ASCII case for
/// keywords and identifiers alike); quoted identifiers keep their inner text,
/// lower-cased too.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An unquoted word: a keyword or an identifier.
    Word(String),
    /// A back-quoted or bracketed identifier.
    Quoted(String),
    /// A double-quoted name: an identifier, or a string when no column has
    /// that name (SQLite's fallback).
    DQuoted(String),
    Str,
    Num,
    Punct(&'static str),
    /// End of the text: only [`super::SqlChecker::finish`] sends it.
    End,
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Quoted(w) => write!(f, "`{w}`"),
            Tok::DQuoted(w) => write!(f, "\"{w}\""),
            Tok::Str => f.write_str("a string"),
            Tok::Num => f.write_str("a number"),
            Tok::Punct(p) => write!(f, "`{p}`"),
            Tok::End => f.write_str("the end of the query"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the token's first character in the whole text.
    pub offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Idle,
    Word,
    /// Digits, an optional fraction and exponent.
    Number {
        dot: bool,
        exp: bool,
        /// The last character was `e`/`E`: a sign may follow.
        after_e: bool,
        hex: bool,
    },
    /// Inside a quoted token closed by `close`; `closed` once the closing
    /// quote was seen (a second one right after is an escaped quote).
    Quote {
        open: char,
        close: char,
        closed: bool,
    },
    /// One character of an operator that may take a second (`<` of `<=`).
    Op(char),
    /// `->`, which may become `->>`.
    Arrow,
    /// `-` (minus, or the start of `--` / `->`).
    Minus,
    /// `/` (divide, or the start of `/*`).
    Slash,
    LineComment,
    BlockComment {
        star: bool,
    },
    /// `.`: member access, or the start of `.5`.
    Dot,
}

/// What went wrong while tokenizing, at a byte offset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LexError {
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Lexer {
    state: State,
    /// The pending token's text (word or quoted content).
    buf: String,
    start: usize,
    pos: usize,
    /// The last token was a name or `)`: a following `.` is member access.
    after_name: bool,
    /// Nothing but whitespace so far on the current line.
    line_blank: bool,
    /// The pending `-` or `/` starts its line, so it may open a comment.
    comment_allowed: bool,
    /// Characters of the comment being read.
    comment_len: usize,
}

/// Comments stand on lines of their own, as in SynSQL's gold SQL, and are
/// short: a decoder that could open one anywhere, or write one without end,
/// would escape every other check inside it.
const MAX_COMMENT_CHARS: usize = 200;

/// The longest quoted string or name, in bytes: Spider's and the sample's
/// longest literal has 56 characters, and a quote a decoder never closes
/// would hide the rest of its query.
const MAX_QUOTED_BYTES: usize = 120;

/// The longest number literal, in characters: Spider's and the sample's
/// longest has 9, and a decoder writing digits one per token went on to the
/// token limit (`WHERE Ttl > 2000000000000…`).
const MAX_NUMBER_CHARS: usize = 32;

impl Default for Lexer {
    fn default() -> Self {
        Self {
            state: State::Idle,
            buf: String::new(),
            start: 0,
            pos: 0,
            after_name: false,
            line_blank: true,
            comment_allowed: false,
            comment_len: 0,
        }
    }
}

fn word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// Two-character operators, by their first character.
fn second_char(first: char, c: char) -> Option<&'static str> {
    Some(match (first, c) {
        ('<', '=') => "<=",
        ('<', '>') => "<>",
        ('<', '<') => "<<",
        ('>', '=') => ">=",
        ('>', '>') => ">>",
        ('=', '=') => "==",
        ('!', '=') => "!=",
        ('|', '|') => "||",
        _ => return None,
    })
}

fn single(c: char) -> Option<&'static str> {
    Some(match c {
        '(' => "(",
        ')' => ")",
        ',' => ",",
        ';' => ";",
        '*' => "*",
        '+' => "+",
        '%' => "%",
        '&' => "&",
        '~' => "~",
        '?' => "?",
        '<' => "<",
        '>' => ">",
        '=' => "=",
        '|' => "|",
        _ => return None,
    })
}

impl Lexer {
    /// Bytes consumed so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// The unfinished word (or quoted identifier) at the end of the text,
    /// lower-cased, for checking whether any name could still start so.
    pub fn pending_name(&self) -> Option<String> {
        match self.state {
            State::Word => Some(self.buf.to_ascii_lowercase()),
            State::Quote {
                open: '`' | '[',
                closed: false,
                ..
            } => Some(self.buf.to_ascii_lowercase()),
            _ => None,
        }
    }

    /// The text so far of a pending double-quoted token (lower-cased):
    /// a name or, where no column has that name, a string.
    pub fn pending_double_quoted(&self) -> Option<String> {
        match self.state {
            State::Quote { open: '"', .. } => Some(self.buf.to_ascii_lowercase()),
            _ => None,
        }
    }

    /// The text so far of a quoted token still open (a doubled quote
    /// character, its escape, read as one).
    pub fn pending_quote_text(&self) -> Option<&str> {
        match self.state {
            State::Quote { .. } => Some(&self.buf),
            _ => None,
        }
    }

    /// The length so far of a single-quoted string still open.
    pub fn pending_string_len(&self) -> Option<usize> {
        match self.state {
            State::Quote { open: '\'', .. } => Some(self.buf.len()),
            _ => None,
        }
    }

    /// Whether the text so far ends inside a comment.
    pub fn in_comment(&self) -> bool {
        matches!(self.state, State::LineComment | State::BlockComment { .. })
    }

    /// Where the pending token starts.
    pub fn pending_start(&self) -> usize {
        self.start
    }

    /// The tokens a pending operator, number or string may still become
    /// (none for other states: words are checked by prefix, and `-` and
    /// `/` can always go on as a comment).
    pub fn pending_tokens(&self) -> Vec<Tok> {
        self.pending_tokens_if(self.comment_allowed)
    }

    /// [`Lexer::pending_tokens`] where no comment may open: a pending `-`
    /// or `/` is an operator.
    pub fn pending_tokens_without_comments(&self) -> Vec<Tok> {
        self.pending_tokens_if(false)
    }

    fn pending_tokens_if(&self, comment_allowed: bool) -> Vec<Tok> {
        match self.state {
            State::Op(c) => {
                let mut all: Vec<Tok> = single(c).map(Tok::Punct).into_iter().collect();
                all.extend(
                    ['=', '>', '<', '|']
                        .iter()
                        .filter_map(|&d| second_char(c, d))
                        .map(Tok::Punct),
                );
                all
            }
            State::Number { .. } => vec![Tok::Num],
            // A `-` or `/` that cannot open a comment here is an operator.
            State::Minus if !comment_allowed => {
                vec![Tok::Punct("-"), Tok::Punct("->"), Tok::Punct("->>")]
            }
            State::Slash if !comment_allowed => vec![Tok::Punct("/")],
            State::Arrow => vec![Tok::Punct("->"), Tok::Punct("->>")],
            State::Dot => vec![Tok::Punct("."), Tok::Num],
            State::Quote { open: '\'', .. } => vec![Tok::Str],
            _ => Vec::new(),
        }
    }

    fn emit(&mut self, tok: Tok, out: &mut Vec<Token>) {
        self.after_name = matches!(
            tok,
            Tok::Word(_) | Tok::Quoted(_) | Tok::DQuoted(_) | Tok::Punct(")")
        );
        out.push(Token {
            tok,
            offset: self.start,
        });
        self.state = State::Idle;
        self.buf.clear();
    }

    /// Tokenizes `text`, appending every token that is now complete.
    pub fn push(&mut self, text: &str, out: &mut Vec<Token>) -> Result<(), LexError> {
        for c in text.chars() {
            self.step(c, out)?;
            self.pos += c.len_utf8();
            if c == '\n' {
                self.line_blank = true;
            } else if !c.is_whitespace() {
                self.line_blank = false;
            }
        }
        Ok(())
    }

    /// Ends the text: the pending token, if it is a whole one, is emitted.
    pub fn finish(&mut self, out: &mut Vec<Token>) -> Result<(), LexError> {
        let error = |message: &str| LexError {
            offset: self.start,
            message: message.to_string(),
        };
        match self.state {
            State::Idle | State::LineComment | State::BlockComment { .. } => {}
            State::Word => {
                let word = self.buf.to_ascii_lowercase();
                self.emit(Tok::Word(word), out);
            }
            State::Number { after_e: true, .. } => return Err(error("malformed number")),
            State::Number { .. } => self.emit(Tok::Num, out),
            State::Quote {
                open, closed: true, ..
            } => {
                let tok = self.quoted(open);
                self.emit(tok, out);
            }
            State::Quote { .. } => return Err(error("unterminated quote")),
            State::Op(c) => {
                if let Some(p) = single(c) {
                    self.emit(Tok::Punct(p), out);
                } else {
                    return Err(error("unrecognized token `!`"));
                }
            }
            State::Arrow => self.emit(Tok::Punct("->"), out),
            State::Minus => self.emit(Tok::Punct("-"), out),
            State::Slash => self.emit(Tok::Punct("/"), out),
            State::Dot => self.emit(Tok::Punct("."), out),
        }
        self.start = self.pos;
        Ok(())
    }

    fn quoted(&self, open: char) -> Tok {
        let text = self.buf.to_ascii_lowercase();
        match open {
            '\'' => Tok::Str,
            '"' => Tok::DQuoted(text),
            _ => Tok::Quoted(text),
        }
    }

    fn step(&mut self, c: char, out: &mut Vec<Token>) -> Result<(), LexError> {
        loop {
            match self.state {
                State::Idle => return self.start_token(c, out),
                State::Word => {
                    if word_char(c) {
                        self.buf.push(c);
                        return Ok(());
                    }
                    let word = self.buf.to_ascii_lowercase();
                    self.emit(Tok::Word(word), out);
                }
                State::Number {
                    dot,
                    exp,
                    after_e,
                    hex,
                } => {
                    let next = if hex {
                        c.is_ascii_hexdigit().then_some(State::Number {
                            dot,
                            exp,
                            after_e: false,
                            hex,
                        })
                    } else if c.is_ascii_digit() {
                        Some(State::Number {
                            dot,
                            exp,
                            after_e: false,
                            hex,
                        })
                    } else if c == '.' && !dot && !exp {
                        Some(State::Number {
                            dot: true,
                            exp,
                            after_e: false,
                            hex,
                        })
                    } else if (c == 'e' || c == 'E') && !exp {
                        Some(State::Number {
                            dot,
                            exp: true,
                            after_e: true,
                            hex,
                        })
                    } else if (c == '+' || c == '-') && after_e {
                        Some(State::Number {
                            dot,
                            exp,
                            after_e: false,
                            hex,
                        })
                    } else if (c == 'x' || c == 'X') && self.buf == "0" {
                        Some(State::Number {
                            dot,
                            exp,
                            after_e: false,
                            hex: true,
                        })
                    } else {
                        None
                    };
                    if let Some(next) = next {
                        if self.buf.len() >= MAX_NUMBER_CHARS {
                            return Err(LexError {
                                offset: self.start,
                                message: format!(
                                    "a number longer than {MAX_NUMBER_CHARS} characters"
                                ),
                            });
                        }
                        self.state = next;
                        self.buf.push(c);
                        return Ok(());
                    }
                    if after_e || word_char(c) {
                        return Err(LexError {
                            offset: self.start,
                            message: format!("malformed number `{}{c}`", self.buf),
                        });
                    }
                    self.emit(Tok::Num, out);
                }
                State::Quote {
                    open,
                    close,
                    closed,
                } => {
                    if closed {
                        if c == close && open != '[' {
                            self.buf.push(c);
                            self.state = State::Quote {
                                open,
                                close,
                                closed: false,
                            };
                            return Ok(());
                        }
                        let tok = self.quoted(open);
                        self.emit(tok, out);
                    } else {
                        if c == close {
                            self.state = State::Quote {
                                open,
                                close,
                                closed: true,
                            };
                        } else {
                            self.buf.push(c);
                            if self.buf.len() > MAX_QUOTED_BYTES {
                                return Err(LexError {
                                    offset: self.start,
                                    message: format!(
                                        "a quoted text longer than {MAX_QUOTED_BYTES} bytes"
                                    ),
                                });
                            }
                        }
                        return Ok(());
                    }
                }
                State::Op(first) => {
                    if let Some(op) = second_char(first, c) {
                        self.emit(Tok::Punct(op), out);
                        return Ok(());
                    }
                    match single(first) {
                        Some(p) => self.emit(Tok::Punct(p), out),
                        None => {
                            return Err(LexError {
                                offset: self.start,
                                message: format!("unrecognized token `{first}`"),
                            })
                        }
                    }
                }
                State::Arrow => {
                    if c == '>' {
                        self.emit(Tok::Punct("->>"), out);
                        return Ok(());
                    }
                    self.emit(Tok::Punct("->"), out);
                }
                State::Minus => match c {
                    '-' => {
                        self.open_comment()?;
                        self.state = State::LineComment;
                        return Ok(());
                    }
                    '>' => {
                        self.state = State::Arrow;
                        return Ok(());
                    }
                    _ => self.emit(Tok::Punct("-"), out),
                },
                State::Slash => {
                    if c == '*' {
                        self.open_comment()?;
                        self.state = State::BlockComment { star: false };
                        return Ok(());
                    }
                    self.emit(Tok::Punct("/"), out);
                }
                State::LineComment => {
                    if c == '\n' {
                        self.state = State::Idle;
                    } else {
                        self.comment_char()?;
                    }
                    return Ok(());
                }
                State::BlockComment { star } => {
                    self.comment_char()?;
                    self.state = if star && c == '/' {
                        State::Idle
                    } else {
                        State::BlockComment { star: c == '*' }
                    };
                    return Ok(());
                }
                State::Dot => {
                    if c.is_ascii_digit() && !self.after_name {
                        self.buf.push('.');
                        self.buf.push(c);
                        self.state = State::Number {
                            dot: true,
                            exp: false,
                            after_e: false,
                            hex: false,
                        };
                        return Ok(());
                    }
                    self.emit(Tok::Punct("."), out);
                }
            }
        }
    }

    fn open_comment(&mut self) -> Result<(), LexError> {
        if !self.comment_allowed {
            return Err(LexError {
                offset: self.start,
                message: "a comment must stand on a line of its own".to_string(),
            });
        }
        self.comment_len = 0;
        Ok(())
    }

    fn comment_char(&mut self) -> Result<(), LexError> {
        self.comment_len += 1;
        if self.comment_len > MAX_COMMENT_CHARS {
            return Err(LexError {
                offset: self.start,
                message: format!("a comment longer than {MAX_COMMENT_CHARS} characters"),
            });
        }
        Ok(())
    }

    fn start_token(&mut self, c: char, out: &mut Vec<Token>) -> Result<(), LexError> {
        self.start = self.pos;
        self.comment_allowed = self.line_blank;
        self.buf.clear();
        self.state = match c {
            _ if c.is_whitespace() => State::Idle,
            _ if word_start(c) => {
                self.buf.push(c);
                State::Word
            }
            _ if c.is_ascii_digit() => {
                self.buf.push(c);
                State::Number {
                    dot: false,
                    exp: false,
                    after_e: false,
                    hex: false,
                }
            }
            '\'' | '"' | '`' => State::Quote {
                open: c,
                close: c,
                closed: false,
            },
            '[' => State::Quote {
                open: '[',
                close: ']',
                closed: false,
            },
            '-' => State::Minus,
            '/' => State::Slash,
            '.' => State::Dot,
            '<' | '>' | '=' | '!' | '|' => State::Op(c),
            _ => match single(c) {
                Some(p) => {
                    self.emit(Tok::Punct(p), out);
                    State::Idle
                }
                None => {
                    return Err(LexError {
                        offset: self.pos,
                        message: format!("unrecognized character {c:?}"),
                    })
                }
            },
        };
        Ok(())
    }
}
