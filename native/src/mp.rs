//! The subset of MessagePack the states and fact blobs use, written exactly as msgspec writes it
//! (smallest encoding of each int, str8 for strings of 32..255 bytes, ...), read leniently as msgspec reads.

pub type R<T> = Result<T, String>;

pub fn w_int(b: &mut Vec<u8>, x: i64) {
    if x < 0 {
        if x >= -32 {
            b.push(x as u8);
        } else if x >= -128 {
            b.push(0xd0);
            b.push(x as i8 as u8);
        } else if x >= -32768 {
            b.push(0xd1);
            b.extend_from_slice(&(x as i16).to_be_bytes());
        } else if x >= -(1i64 << 31) {
            b.push(0xd2);
            b.extend_from_slice(&(x as i32).to_be_bytes());
        } else {
            b.push(0xd3);
            b.extend_from_slice(&x.to_be_bytes());
        }
    } else if x < 128 {
        b.push(x as u8);
    } else if x < 256 {
        b.push(0xcc);
        b.push(x as u8);
    } else if x < 65536 {
        b.push(0xcd);
        b.extend_from_slice(&(x as u16).to_be_bytes());
    } else if x < (1i64 << 32) {
        b.push(0xce);
        b.extend_from_slice(&(x as u32).to_be_bytes());
    } else {
        b.push(0xcf);
        b.extend_from_slice(&(x as u64).to_be_bytes());
    }
}

#[inline]
pub fn w_nil(b: &mut Vec<u8>) {
    b.push(0xc0);
}

pub fn w_opt_int(b: &mut Vec<u8>, x: Option<i64>) {
    match x {
        Some(v) => w_int(b, v),
        None => w_nil(b),
    }
}

pub fn w_str(b: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        b.push(0xa0 | n as u8);
    } else if n < 256 {
        b.push(0xd9);
        b.push(n as u8);
    } else if n < 65536 {
        b.push(0xda);
        b.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        b.push(0xdb);
        b.extend_from_slice(&(n as u32).to_be_bytes());
    }
    b.extend_from_slice(s.as_bytes());
}

pub fn w_opt_str(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(v) => w_str(b, v),
        None => w_nil(b),
    }
}

pub fn w_bin(b: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 256 {
        b.push(0xc4);
        b.push(n as u8);
    } else if n < 65536 {
        b.push(0xc5);
        b.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        b.push(0xc6);
        b.extend_from_slice(&(n as u32).to_be_bytes());
    }
    b.extend_from_slice(s);
}

pub fn w_array(b: &mut Vec<u8>, n: usize) {
    if n < 16 {
        b.push(0x90 | n as u8);
    } else if n < 65536 {
        b.push(0xdc);
        b.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        b.push(0xdd);
        b.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

pub fn w_map(b: &mut Vec<u8>, n: usize) {
    if n < 16 {
        b.push(0x80 | n as u8);
    } else if n < 65536 {
        b.push(0xde);
        b.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        b.push(0xdf);
        b.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

pub struct Rd<'a> {
    pub b: &'a [u8],
    pub p: usize,
}

impl<'a> Rd<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Rd { b, p: 0 }
    }
    #[inline]
    fn byte(&mut self) -> R<u8> {
        let v = *self.b.get(self.p).ok_or("truncated")?;
        self.p += 1;
        Ok(v)
    }
    #[inline]
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.p + n > self.b.len() {
            return Err("truncated".into());
        }
        let s = &self.b[self.p..self.p + n];
        self.p += n;
        Ok(s)
    }
    fn be(&mut self, n: usize) -> R<u64> {
        let mut v = 0u64;
        for &x in self.take(n)? {
            v = (v << 8) | x as u64;
        }
        Ok(v)
    }
    pub fn peek(&self) -> R<u8> {
        self.b.get(self.p).copied().ok_or_else(|| "truncated".into())
    }
    pub fn done(&self) -> bool {
        self.p == self.b.len()
    }
    pub fn is_nil(&mut self) -> R<bool> {
        if self.peek()? == 0xc0 {
            self.p += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }
    pub fn int(&mut self) -> R<i64> {
        let m = self.byte()?;
        Ok(match m {
            0x00..=0x7f => m as i64,
            0xe0..=0xff => m as i8 as i64,
            0xcc => self.be(1)? as i64,
            0xcd => self.be(2)? as i64,
            0xce => self.be(4)? as i64,
            0xcf => {
                let v = self.be(8)?;
                if v > i64::MAX as u64 {
                    return Err("integer out of the supported range".into());
                }
                v as i64
            }
            0xd0 => self.be(1)? as u8 as i8 as i64,
            0xd1 => self.be(2)? as u16 as i16 as i64,
            0xd2 => self.be(4)? as u32 as i32 as i64,
            0xd3 => self.be(8)? as i64,
            _ => return Err(format!("Expected `int`, got marker 0x{m:02x}")),
        })
    }
    pub fn opt_int(&mut self) -> R<Option<i64>> {
        if self.is_nil()? {
            Ok(None)
        } else {
            self.int().map(Some)
        }
    }
    pub fn str(&mut self) -> R<&'a str> {
        let m = self.byte()?;
        let n = match m {
            0xa0..=0xbf => (m & 0x1f) as usize,
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return Err(format!("Expected `str`, got marker 0x{m:02x}")),
        };
        std::str::from_utf8(self.take(n)?).map_err(|e| e.to_string())
    }
    pub fn opt_str(&mut self) -> R<Option<&'a str>> {
        if self.is_nil()? {
            Ok(None)
        } else {
            self.str().map(Some)
        }
    }
    pub fn bin(&mut self) -> R<&'a [u8]> {
        let m = self.byte()?;
        let n = match m {
            0xc4 => self.be(1)? as usize,
            0xc5 => self.be(2)? as usize,
            0xc6 => self.be(4)? as usize,
            _ => return Err(format!("Expected `bytes`, got marker 0x{m:02x}")),
        };
        self.take(n)
    }
    pub fn array(&mut self) -> R<usize> {
        let m = self.byte()?;
        Ok(match m {
            0x90..=0x9f => (m & 0x0f) as usize,
            0xdc => self.be(2)? as usize,
            0xdd => self.be(4)? as usize,
            _ => return Err(format!("Expected `array`, got marker 0x{m:02x}")),
        })
    }
    pub fn map(&mut self) -> R<usize> {
        let m = self.byte()?;
        Ok(match m {
            0x80..=0x8f => (m & 0x0f) as usize,
            0xde => self.be(2)? as usize,
            0xdf => self.be(4)? as usize,
            _ => return Err(format!("Expected `object`, got marker 0x{m:02x}")),
        })
    }
    /// Skip one value of any type (the extra trailing fields msgspec ignores in array-like structs).
    pub fn skip(&mut self) -> R<()> {
        let m = self.peek()?;
        match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => {
                self.p += 1;
            }
            0xcc..=0xd3 => {
                self.int().or(Ok::<i64, String>(0))?;
            }
            0xca => {
                self.take(5)?;
            }
            0xcb => {
                self.take(9)?;
            }
            0xa0..=0xbf | 0xd9..=0xdb => {
                self.str()?;
            }
            0xc4..=0xc6 => {
                self.bin()?;
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                for _ in 0..self.array()? {
                    self.skip()?;
                }
            }
            0x80..=0x8f | 0xde | 0xdf => {
                for _ in 0..2 * self.map()? {
                    self.skip()?;
                }
            }
            _ => return Err(format!("unsupported msgpack marker 0x{m:02x}")),
        }
        Ok(())
    }
}
