//! A strict subset of JSON, enough to read a well-formed event in place: strings without escapes,
//! numbers, literals, and nested values to skip. Anything outside the subset is `None`, and the route
//! stage hands that message to the full decoder (msgspec), whose answer or reason is the contract's.

pub const MAX_DEPTH: usize = 32;

/// A scalar (or a skipped container) where a field's value was.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val<'a> {
    Str(&'a str),
    Num(&'a str),
    Null,
    Other, // true, false, an object or an array: never a valid value of a typed field here
}

pub struct Json<'a> {
    b: &'a [u8],
    pub i: usize,
}

impl<'a> Json<'a> {
    /// `text` must be valid UTF-8 (checked once for the whole message by the caller).
    pub fn new(text: &'a str) -> Self {
        Json { b: text.as_bytes(), i: 0 }
    }

    pub fn at(text: &'a str, i: usize) -> Self {
        Json { b: text.as_bytes(), i }
    }

    pub fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    pub fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    /// A string without escapes or control characters.
    pub fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        self.i += 1;
        // SAFETY: the whole text is UTF-8 and both ends are ASCII quotes, so this is a char boundary.
        Some(unsafe { std::str::from_utf8_unchecked(&self.b[start..self.i - 1]) })
    }

    /// A number as JSON writes it: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    pub fn number(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.i;
        self.opt(b'-');
        match *self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.opt(b'.') {
            self.some_digits()?;
        }
        if self.opt(b'e') || self.opt(b'E') {
            let _ = self.opt(b'+') || self.opt(b'-');
            self.some_digits()?;
        }
        // SAFETY: only ASCII bytes were consumed.
        Some(unsafe { std::str::from_utf8_unchecked(&self.b[start..self.i]) })
    }

    fn opt(&mut self, c: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&c);
        self.i += hit as usize;
        hit
    }

    fn digits(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }

    fn word(&mut self, w: &[u8]) -> Option<()> {
        self.b[self.i..].starts_with(w).then(|| self.i += w.len())
    }

    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// The next value: a scalar, or a container skipped (checked, not kept).
    pub fn value(&mut self, depth: usize) -> Option<Val<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Val::Str),
            b'-' | b'0'..=b'9' => self.number().map(Val::Num),
            b'n' => self.word(b"null").map(|_| Val::Null),
            b't' => self.word(b"true").map(|_| Val::Other),
            b'f' => self.word(b"false").map(|_| Val::Other),
            b'{' => self.skip_object(depth + 1).map(|_| Val::Other),
            b'[' => self.skip_array(depth + 1).map(|_| Val::Other),
            _ => None,
        }
    }

    fn skip_object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut first = true;
        while let Some(_key) = self.key(&mut first)? {
            self.value(depth)?;
        }
        Some(())
    }

    fn skip_array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.value(depth)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Walks an object: the first call eats `{`; each call gives the next key with its `:` eaten,
    /// `Some(None)` after the closing `}`, `None` on anything outside the subset.
    pub fn key(&mut self, first: &mut bool) -> Option<Option<&'a str>> {
        if *first {
            *first = false;
            self.eat(b'{')?;
            if self.peek()? == b'}' {
                self.i += 1;
                return Some(None);
            }
        } else {
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(None);
                }
                _ => return None,
            }
        }
        let k = self.string()?;
        self.eat(b':')?;
        Some(Some(k))
    }
}
