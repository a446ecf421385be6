//! Math-answer verifier for user datasets: extracts the final answer from a completion and compares
//! it with the reference answer by exact value.
//!
//! Extraction, first that applies: the last `\boxed{…}` / `\fbox{…}` (braces matched); the text
//! after the last `answer:` / `answer is` / `####`; the last number in the text.
//! Normalisation: `$…$`, `\(…\)`, `\left`/`\right`, `\text{…}` units, currency symbols, `%`,
//! trailing units and words, a leading `x =`, unicode minus, thousands separators (`1,234`,
//! `1{,}234`, `1\,234` and SI-style `1 234`), decimals, fractions `a/b`, `\frac{a}{b}` / `\dfrac` /
//! `\frac12`, mixed numbers `1 1/2`, and exponents `1e3`. Numbers compare as exact rationals; other
//! answers compare as normalised text.

use crate::rational::Rational;

/// Content of the last `\boxed{...}` or `\fbox{...}` in `s`, braces matched.
fn last_boxed(s: &str) -> Option<String> {
    let i = s.rfind("\\boxed").into_iter().chain(s.rfind("\\fbox")).max()?;
    let rest = &s[i..];
    let open = rest.find('{')?;
    let mut depth = 0;
    for (j, c) in rest[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(rest[open + 1..open + j].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// The candidate answer text in a completion, before normalisation.
pub fn extract(completion: &str) -> Option<String> {
    if let Some(b) = last_boxed(completion) {
        return Some(b);
    }
    let lower = completion.to_lowercase();
    let markers = ["answer:", "answer is", "####"];
    if let Some((i, m)) = markers.iter().filter_map(|m| lower.rfind(m).map(|i| (i, *m))).max_by_key(|x| x.0) {
        let rest = completion.get(i + m.len()..).unwrap_or("");
        let line = rest.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        let line = line.trim().trim_end_matches('.').trim();
        if !line.is_empty() {
            return Some(line.to_string());
        }
    }
    last_number(completion)
}

/// The last number-like span (digits with `,` `.` `/` inside, optional leading minus).
fn last_number(s: &str) -> Option<String> {
    let cs: Vec<char> = s.chars().collect();
    let mut end = cs.len();
    while end > 0 && !cs[end - 1].is_ascii_digit() {
        end -= 1;
    }
    if end == 0 {
        return None;
    }
    let mut st = end;
    while st > 0
        && (cs[st - 1].is_ascii_digit()
            || (matches!(cs[st - 1], ',' | '.' | '/') && st >= 2 && cs[st - 2].is_ascii_digit()))
    {
        st -= 1;
    }
    if st > 0 && matches!(cs[st - 1], '-' | '−') {
        st -= 1;
    }
    Some(cs[st..end].iter().collect())
}

/// Strip LaTeX wrappers, units and decoration, keeping the mathematical content.
pub fn normalize(ans: &str) -> String {
    let mut s = ans.trim().to_string();
    if let Some(b) = last_boxed(&s) {
        s = b;
    }
    for (from, to) in [
        ("\\left", ""),
        ("\\right", ""),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("\\ ", ""),
        ("{,}", ","),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\%", "%"),
        ("\\$", ""),
        ("−", "-"),
        ("\\(", ""),
        ("\\)", ""),
        ("\\[", ""),
        ("\\]", ""),
        ("^\\circ", ""),
        ("^{\\circ}", ""),
        ("°", ""),
    ] {
        s = s.replace(from, to);
    }
    // \text{...} / \mathrm{...} / \mbox{...}: units or words; drop them
    for cmd in ["\\text", "\\mathrm", "\\mbox", "\\textbf"] {
        while let Some(i) = s.find(cmd) {
            let Some(open) = s[i..].find('{') else { break };
            let Some(close) = s[i + open..].find('}') else {
                break;
            };
            let inner = s[i + open + 1..i + open + close].to_string();
            let keep = if inner.trim().chars().any(|c| c.is_ascii_digit()) { inner } else { String::new() };
            s.replace_range(i..i + open + close + 1, &keep);
        }
    }
    let s = s.trim().trim_matches('$').trim();
    // `x = 5` -> `5`
    let s = match s.rfind('=') {
        Some(i) if !s[..i].contains(['<', '>']) => s[i + 1..].trim(),
        _ => s,
    };
    s.trim_end_matches('.').trim().to_string()
}

fn strip_thousands(s: &str) -> Option<String> {
    if !s.contains(',') {
        return Some(s.to_string());
    }
    let (ip, fp) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let ip_digits = ip.trim_start_matches(['-', '+']);
    let groups: Vec<&str> = ip_digits.split(',').collect();
    let ok = !groups[0].is_empty()
        && groups[0].len() <= 3
        && groups[1..].iter().all(|g| g.len() == 3)
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
    if !ok || fp.is_some_and(|f| f.contains(',')) {
        return None;
    }
    let sign = &ip[..ip.len() - ip_digits.len()];
    Some(format!("{sign}{}{}", groups.concat(), fp.map(|f| format!(".{f}")).unwrap_or_default()))
}

fn parse_plain(s: &str) -> Option<Rational> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('/') {
        let (a, b) = (parse_plain(a)?, parse_plain(b)?);
        return a.checked_div(b);
    }
    Rational::parse_decimal(&strip_thousands(s)?)
}

fn parse_frac(s: &str) -> Option<Rational> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b.trim()),
        None => (false, s),
    };
    let body = body.strip_prefix("\\frac")?.trim();
    let (num, rest) = if let Some(r) = body.strip_prefix('{') {
        let c = r.find('}')?;
        (r[..c].to_string(), r[c + 1..].trim().to_string())
    } else {
        let mut it = body.chars();
        (it.next()?.to_string(), it.as_str().trim().to_string())
    };
    let den = if let Some(r) = rest.strip_prefix('{') {
        let c = r.find('}')?;
        if !r[c + 1..].trim().is_empty() {
            return None;
        }
        r[..c].to_string()
    } else if rest.chars().count() == 1 {
        rest
    } else {
        return None;
    };
    let v = parse_value(&num)?.checked_div(parse_value(&den)?)?;
    Some(if neg { -v } else { v })
}

/// Parse a normalised answer as an exact number, if it is one.
pub fn parse_value(s: &str) -> Option<Rational> {
    let mut t = s.trim().replace('\u{a0}', " ");
    for cur in ["$", "€", "£", "¥", "USD", "usd"] {
        t = t.replace(cur, "");
    }
    let t = t.trim().trim_end_matches('%').trim();
    // drop trailing unit words: "12 cm", "5 apples", "3 m^2"
    let t = match t.find(|c: char| c.is_alphabetic() && c != 'e' && c != 'E') {
        Some(i) if i > 0 && !t.contains('\\') => t[..i].trim(),
        _ => t,
    };
    if t.is_empty() {
        return None;
    }
    if t.contains("\\frac") {
        // mixed number `2\frac{1}{2}`
        if let Some(i) = t.find("\\frac").filter(|&i| t[..i].chars().any(|c| c.is_ascii_digit())) {
            let whole = parse_plain(&t[..i])?;
            let f = parse_frac(&t[i..])?;
            return if whole < Rational::int(0) { whole.checked_sub(f) } else { whole.checked_add(f) };
        }
        return parse_frac(t);
    }
    // mixed number `1 1/2`
    if let Some((w, f)) = t.split_once(' ') {
        if f.contains('/') && !w.contains('/') {
            let (whole, frac) = (parse_plain(w)?, parse_plain(f)?);
            return if whole < Rational::int(0) { whole.checked_sub(frac) } else { whole.checked_add(frac) };
        }
        return None;
    }
    parse_plain(t)
}

/// Canonical form for voting and comparison: the exact value if numeric, else lower-cased text
/// without spaces.
pub fn canonical(ans: &str) -> String {
    let n = normalize(ans);
    match parse_value(&n) {
        Some(v) => v.to_string(),
        None => n.to_lowercase().chars().filter(|c| !c.is_whitespace()).collect(),
    }
}

/// Whether a predicted answer equals the reference.
pub fn equivalent(pred: &str, gold: &str) -> bool {
    let (p, g) = (canonical(pred), canonical(gold));
    !p.is_empty() && p == g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalence_table() {
        let yes: &[(&str, &str)] = &[
            ("42", "42"),
            ("42.0", "42"),
            ("42.000", "42"),
            ("0.5", "1/2"),
            (".5", "0.5"),
            ("\\frac{1}{2}", "0.5"),
            ("\\dfrac{3}{4}", "0.75"),
            ("\\tfrac{3}{4}", "3/4"),
            ("\\frac12", "1/2"),
            ("-\\frac{1}{2}", "-0.5"),
            ("\\frac{-1}{2}", "-1/2"),
            ("2/4", "1/2"),
            ("1,234", "1234"),
            ("1,234,567.5", "1234567.5"),
            ("1{,}000", "1000"),
            ("$1,000", "1000"),
            ("\\$5.00", "5"),
            ("50%", "50"),
            ("50\\%", "50"),
            ("12 cm", "12"),
            ("12\\text{ cm}", "12"),
            ("5 apples", "5"),
            ("x = 7", "7"),
            ("$x=7$", "7"),
            ("\\boxed{17}", "17"),
            ("−3", "-3"),
            ("1 1/2", "3/2"),
            ("2\\frac{1}{2}", "2.5"),
            ("1e3", "1000"),
            ("1 234", "1234"),
            ("1\\,234", "1234"),
            ("90^\\circ", "90"),
            ("\\left(3\\right)", "(3)"),
            ("\\text{yes}", ""), // both empty after dropping words: never equal
        ];
        for (p, g) in &yes[..yes.len() - 1] {
            assert!(equivalent(p, g), "{p} should equal {g} ({} vs {})", canonical(p), canonical(g));
        }
        assert!(!equivalent(yes.last().unwrap().0, yes.last().unwrap().1));
        let no: &[(&str, &str)] = &[
            ("42", "43"),
            ("0.5", "0.51"),
            ("1,23", "123"),
            ("1/3", "0.333"),
            ("-2", "2"),
            ("12,34", "1234"),
            ("3/0", "0"),
            ("", "0"),
            ("abc", "abd"),
        ];
        for (p, g) in no {
            assert!(!equivalent(p, g), "{p} should differ from {g}");
        }
        assert!(yes.len() + no.len() >= 30);
        // non-numeric answers compare as text
        assert!(equivalent("Paris", "paris"));
        assert!(equivalent("(1, 2)", "(1,2)"));
    }

    #[test]
    fn extraction_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("so the answer is \\boxed{42}.", Some("42")),
            ("\\boxed{\\frac{1}{2}} and later \\boxed{3}", Some("3")),
            ("\\boxed{\\frac{1}{2}}", Some("\\frac{1}{2}")),
            ("Answer: 12 cm", Some("12 cm")),
            ("The answer is 7.", Some("7")),
            ("work...\n#### 1,234", Some("1,234")),
            ("answer:\n  5", Some("5")),
            ("we get 3 then 4 and finally 10", Some("10")),
            ("total -7 degrees", Some("-7")),
            ("ratio 3/4.", Some("3/4")),
            ("no numbers here", None),
            ("\\fbox{9}", Some("9")),
        ];
        for (text, want) in cases {
            assert_eq!(extract(text).as_deref(), *want, "{text}");
        }
        // end to end: completion vs gold
        assert!(equivalent(&extract("Thus $\\boxed{\\dfrac{6}{8}}$").unwrap(), "0.75"));
        assert!(equivalent(&extract("It costs $1,500 in total. Answer: $1,500").unwrap(), "1500"));
        assert!(!equivalent(&extract("answer: 1500.5").unwrap(), "1500"));
    }
}
