//! Exact rational numbers (i128 numerator / positive denominator, always reduced) for verifiers:
//! answers like `0.5`, `1/2` and `\frac{2}{4}` compare equal without floating-point error.

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Rational {
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        let s = if den < 0 { -1 } else { 1 };
        Some(Self { num: s * num / g, den: s * den / g })
    }
    pub fn int(n: i128) -> Self {
        Self { num: n, den: 1 }
    }
    pub fn num(&self) -> i128 {
        self.num
    }
    pub fn den(&self) -> i128 {
        self.den
    }
    pub fn is_integer(&self) -> bool {
        self.den == 1
    }
    pub fn checked_add(self, o: Self) -> Option<Self> {
        Self::new(self.num.checked_mul(o.den)?.checked_add(o.num.checked_mul(self.den)?)?, self.den.checked_mul(o.den)?)
    }
    pub fn checked_sub(self, o: Self) -> Option<Self> {
        self.checked_add(-o)
    }
    pub fn checked_mul(self, o: Self) -> Option<Self> {
        Self::new(self.num.checked_mul(o.num)?, self.den.checked_mul(o.den)?)
    }
    /// None on division by zero or overflow.
    pub fn checked_div(self, o: Self) -> Option<Self> {
        if o.num == 0 {
            return None;
        }
        Self::new(self.num.checked_mul(o.den)?, self.den.checked_mul(o.num)?)
    }

    /// Parse a plain decimal: optional sign, digits, optional fraction part (`12`, `-0.50`, `.5`,
    /// `3.`), optional exponent (`1e3`, `2.5E-2`). At most 30 significant digits.
    pub fn parse_decimal(s: &str) -> Option<Self> {
        let s = s.trim();
        let (mant, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
            None => (s, 0),
        };
        let (neg, body) = match mant.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, mant.strip_prefix('+').unwrap_or(mant)),
        };
        let (ip, fp) = match body.split_once('.') {
            Some((a, b)) => (a, b),
            None => (body, ""),
        };
        if ip.is_empty() && fp.is_empty() || !ip.bytes().chain(fp.bytes()).all(|c| c.is_ascii_digit()) {
            return None;
        }
        if ip.len() + fp.len() > 30 || exp.abs() > 30 {
            return None;
        }
        let digits = format!("{ip}{fp}");
        let n: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
        let scale = fp.len() as i32 - exp;
        let r = if scale >= 0 {
            Self::new(n, 10i128.checked_pow(scale as u32)?)?
        } else {
            Self::new(n.checked_mul(10i128.checked_pow((-scale) as u32)?)?, 1)?
        };
        Some(if neg { -r } else { r })
    }
}

impl std::ops::Neg for Rational {
    type Output = Self;
    fn neg(self) -> Self {
        Self { num: -self.num, den: self.den }
    }
}

impl PartialOrd for Rational {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Rational {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.num * other.den).cmp(&(other.num * self.den))
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_and_parsing() {
        let r = |a, b| Rational::new(a, b).unwrap();
        assert_eq!(r(2, 4), r(1, 2));
        assert_eq!(r(1, -2), r(-1, 2));
        assert_eq!(r(1, 3).checked_add(r(1, 6)), Some(r(1, 2)));
        assert_eq!(r(1, 3).checked_div(Rational::int(0)), None);
        assert_eq!(Rational::parse_decimal("0.50"), Some(r(1, 2)));
        assert_eq!(Rational::parse_decimal(".5"), Some(r(1, 2)));
        assert_eq!(Rational::parse_decimal("-3."), Some(Rational::int(-3)));
        assert_eq!(Rational::parse_decimal("2.5e-2"), Some(r(1, 40)));
        assert_eq!(Rational::parse_decimal("1E3"), Some(Rational::int(1000)));
        assert_eq!(Rational::parse_decimal("1.2.3"), None);
        assert_eq!(Rational::parse_decimal("."), None);
        assert_eq!(Rational::parse_decimal("12a"), None);
        assert!(r(1, 3) < r(1, 2));
        assert_eq!(r(-6, 4).to_string(), "-3/2");
    }
}
