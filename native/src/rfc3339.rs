//! Epoch microseconds of an RFC 3339 time as publishers usually write it:
//! `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)`. Other spellings (more digits, lower-case letters, a
//! space, a leap second) are `None` and left to the full decoder.

fn num(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let digits = b.get(at..at + n)?;
    digits.iter().try_fold(0i64, |acc, c| c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0')))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn epoch_us(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(b, 0, 4)?, num(b, 5, 2)?, num(b, 8, 2)?);
    let (h, mi, s) = (num(b, 11, 2)?, num(b, 14, 2)?, num(b, 17, 2)?);
    if !(1000..=9998).contains(&y) || !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 6 {
            return None;
        }
        micros = num(b, start, n)? * 10i64.pow((6 - n) as u32);
    }
    let offset = match (b.get(i)?, b.len() - i) {
        (b'Z', 1) => 0,
        (sign @ (b'+' | b'-'), 6) if b[i + 3] == b':' => {
            let (oh, om) = (num(b, i + 1, 2)?, num(b, i + 4, 2)?);
            if oh > 23 || om > 59 || (*sign == b'-' && oh == 0 && om == 0) {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
    Some(seconds * 1_000_000 + micros)
}
