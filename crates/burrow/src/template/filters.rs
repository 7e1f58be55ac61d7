//! The template filters every app gets: dates and times (`date`, `time`, `naturaltime`,
//! `naturalday`), numbers (`intcomma`, `filesizeformat`), words (`pluralize`,
//! `truncatechars`) and text to HTML (`linebreaks`, `urlize`), with Django's semantics where
//! Django has the same filter.
//!
//! Data is whatever the database held, so a value a filter cannot read (a date column holding
//! "soon", a count holding "n/a") comes back unchanged instead of failing the whole page.
//! Times are read as Burrow stores them (RFC 3339 text in UTC, see
//! [`utc_now`](crate::db::utc_now)) and shown in UTC: the server knows no reader's time zone.

use minijinja::value::{Value, ValueKind};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::TemplateEnv;

/// `date` without a format: "2 Dec 2026".
const DATE_FORMAT: &str = "%-d %b %Y";
/// `time` without a format: "14:05".
const TIME_FORMAT: &str = "%H:%M";

/// Adds the filters; an app's `template_env` runs later and may replace any of them.
pub(crate) fn register(env: &mut TemplateEnv) {
    env.add_filter("date", |value: Value, format: Option<String>| {
        with_time(value, |t| strftime(t, format.as_deref().unwrap_or(DATE_FORMAT)))
    });
    env.add_filter("time", |value: Value, format: Option<String>| {
        with_time(value, |t| strftime(t, format.as_deref().unwrap_or(TIME_FORMAT)))
    });
    env.add_filter("naturaltime", |value: Value| {
        with_time(value, |t| naturaltime(t, OffsetDateTime::now_utc()))
    });
    env.add_filter("naturalday", |value: Value, format: Option<String>| {
        with_time(value, |t| naturalday(t, OffsetDateTime::now_utc(), format.as_deref()))
    });
    env.add_filter("intcomma", intcomma);
    env.add_filter("filesizeformat", filesizeformat);
    env.add_filter("pluralize", pluralize);
    env.add_filter("truncatechars", truncatechars);
    env.add_filter("linebreaks", linebreaks);
    env.add_filter("urlize", urlize);
}

/// Applies `f` to the time `value` holds, or gives `value` back when it holds none. A
/// missing time (a NULL column: "not edited yet") shows as nothing rather than "None".
fn with_time(value: Value, f: impl FnOnce(OffsetDateTime) -> String) -> Value {
    match parse_time(&value) {
        Some(t) => Value::from(f(t)),
        None if value.is_none() => Value::from(""),
        None => value,
    }
}

/// An RFC 3339 timestamp (`2026-12-02T14:05:09Z`, an offset, fractions of a second, a space
/// for the `T`, no zone meaning UTC), a bare date, or Unix seconds, converted to UTC.
fn parse_time(value: &Value) -> Option<OffsetDateTime> {
    if value.kind() == ValueKind::Number {
        return OffsetDateTime::from_unix_timestamp(value.as_i64()?).ok();
    }
    let s = value.as_str()?.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = s.get(from..from + len)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let month = Month::try_from(u8::try_from(num(5, 2)?).ok()?).ok()?;
    let date = Date::from_calendar_date(num(0, 4)? as i32, month, num(8, 2)? as u8).ok()?;
    if b.len() == 10 {
        return Some(date.midnight().assume_utc());
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 16 || b[13] != b':' {
        return None;
    }
    let (hour, minute) = (num(11, 2)? as u8, num(14, 2)? as u8);
    let mut at = 16;
    let mut second = 0;
    if b.get(at) == Some(&b':') {
        second = num(17, 2)? as u8;
        at = 19;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            at += digits;
        }
    }
    let offset = match &b[at..] {
        [] | [b'Z' | b'z'] => UtcOffset::UTC,
        [sign @ (b'+' | b'-'), ..] => {
            let rest = &s[at + 1..];
            let (h, m) = match rest.len() {
                5 if rest.as_bytes()[2] == b':' => (rest.get(..2)?, rest.get(3..)?),
                4 => (rest.get(..2)?, rest.get(2..)?),
                _ => return None,
            };
            let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
            let sign = if *sign == b'-' { -1 } else { 1 };
            UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
        _ => return None,
    };
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset).to_offset(UtcOffset::UTC))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] =
    ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// The strftime directives people use: `%Y %y %m %d %H %I %M %S %p %b %B %a %A %j %Z %z %F
/// %T %%`, and `%-d`, `%-m`, `%-H`, `%-I` without the leading zero. Anything else is copied
/// as written, so a typo shows on the page instead of breaking it.
fn strftime(t: OffsetDateTime, format: &str) -> String {
    let mut out = String::with_capacity(format.len() + 8);
    let mut chars = format.chars();
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut directive = chars.next();
        let pad = directive != Some('-');
        if !pad {
            directive = chars.next();
        }
        let number = |n: u32| if pad { format!("{n:02}") } else { n.to_string() };
        let month = MONTHS[usize::from(u8::from(t.month())) - 1];
        let weekday = WEEKDAYS[usize::from(t.weekday().number_days_from_monday())];
        match directive {
            Some('Y') => out.push_str(&t.year().to_string()),
            Some('y') => out.push_str(&format!("{:02}", t.year().rem_euclid(100))),
            Some('m') => out.push_str(&number(u8::from(t.month()).into())),
            Some('d') => out.push_str(&number(t.day().into())),
            Some('H') => out.push_str(&number(t.hour().into())),
            Some('I') => out.push_str(&number(hour12.into())),
            Some('M') => out.push_str(&format!("{:02}", t.minute())),
            Some('S') => out.push_str(&format!("{:02}", t.second())),
            Some('p') => out.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
            Some('b') => out.push_str(&month[..3]),
            Some('B') => out.push_str(month),
            Some('a') => out.push_str(&weekday[..3]),
            Some('A') => out.push_str(weekday),
            Some('j') => out.push_str(&format!("{:03}", t.ordinal())),
            Some('Z') => out.push_str("UTC"),
            Some('z') => out.push_str("+0000"),
            Some('F') => out.push_str(&strftime(t, "%Y-%m-%d")),
            Some('T') => out.push_str(&strftime(t, "%H:%M:%S")),
            Some('%') => out.push('%'),
            other => {
                out.push('%');
                if !pad {
                    out.push('-');
                }
                out.extend(other);
            }
        }
    }
    out
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

/// "just now", "3 minutes ago", "in 2 hours", "5 days ago"; a week or more away, the date.
fn naturaltime(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (now - t).whole_seconds();
    let (past, distance) = (seconds >= 0, seconds.unsigned_abs() as i64);
    let amount = match distance {
        0..60 => return "just now".into(),
        60..3_600 => plural(distance / 60, "minute"),
        3_600..86_400 => plural(distance / 3_600, "hour"),
        86_400..604_800 => plural(distance / 86_400, "day"),
        _ => return strftime(t, DATE_FORMAT),
    };
    if past { format!("{amount} ago") } else { format!("in {amount}") }
}

/// "today", "yesterday", "tomorrow" (by the UTC calendar), else the date.
fn naturalday(t: OffsetDateTime, now: OffsetDateTime, format: Option<&str>) -> String {
    match (t.date() - now.date()).whole_days() {
        0 => "today".into(),
        -1 => "yesterday".into(),
        1 => "tomorrow".into(),
        _ => strftime(t, format.unwrap_or(DATE_FORMAT)),
    }
}

/// A number as text (`12`, `-3.5`, `"1234"`), or `None` for anything else.
fn numeric_text(value: &Value) -> Option<String> {
    match value.kind() {
        ValueKind::Number => Some(value.to_string()),
        ValueKind::String => {
            let s = value.as_str()?.trim();
            let digits = s.strip_prefix('-').unwrap_or(s);
            let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
            let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
            (all_digits(int) && all_digits(frac)).then(|| s.to_string())
        }
        _ => None,
    }
}

/// 1234567 → "1,234,567"; 1234.5 → "1,234.5"; anything not a number unchanged.
fn intcomma(value: Value) -> Value {
    let Some(text) = numeric_text(&value) else {
        return value;
    };
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    // Floats print in exponent form past 1e16; leave those as they are.
    if !int.bytes().all(|c| c.is_ascii_digit()) {
        return value;
    }
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
    Value::from(format!("{sign}{grouped}{frac}"))
}

/// Bytes as people read them, in units of 1024 as Django does: "1 byte", "300 bytes",
/// "1.0 KB", "1.2 MB".
fn filesizeformat(value: Value) -> Value {
    let Some(bytes) = numeric_text(&value).and_then(|t| t.parse::<f64>().ok()) else {
        return value;
    };
    let (sign, bytes) = if bytes < 0.0 { ("-", -bytes) } else { ("", bytes) };
    let units = ["KB", "MB", "GB", "TB", "PB"];
    let text = if bytes < 1024.0 {
        let n = bytes as i64;
        if n == 1 { "1 byte".to_string() } else { format!("{n} bytes") }
    } else {
        let mut size = bytes / 1024.0;
        let mut unit = 0;
        while size >= 1024.0 && unit < units.len() - 1 {
            size /= 1024.0;
            unit += 1;
        }
        format!("{size:.1} {}", units[unit])
    };
    Value::from(format!("{sign}{text}"))
}

/// Django's `pluralize`: `note{{ n|pluralize }}`, `cherr{{ n|pluralize("y,ies") }}`,
/// `walrus{{ n|pluralize("es") }}`. A number (or numeric text) of 1, or a list of one,
/// is singular; anything unreadable gives the empty suffix.
fn pluralize(value: Value, suffixes: Option<String>) -> String {
    let suffixes = suffixes.unwrap_or_else(|| "s".into());
    let (singular, plural) = match suffixes.split(',').collect::<Vec<_>>()[..] {
        [plural] => ("", plural),
        [singular, plural] => (singular, plural),
        _ => return String::new(),
    };
    let one = match value.kind() {
        ValueKind::Number => f64::try_from(value).ok().map(|n| n == 1.0),
        ValueKind::String => {
            value.as_str().and_then(|s| s.trim().parse::<f64>().ok()).map(|n| n == 1.0)
        }
        ValueKind::Seq | ValueKind::Map => value.len().map(|n| n == 1),
        _ => None,
    };
    match one {
        Some(true) => singular.into(),
        Some(false) => plural.into(),
        None => String::new(),
    }
}

/// At most `length` characters, the last one "…" when the text was cut.
fn truncatechars(value: Value, length: usize) -> Value {
    if value.is_undefined() || value.is_none() {
        return value;
    }
    let text = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
    if text.chars().count() <= length {
        return Value::from(text);
    }
    let mut cut: String = text.chars().take(length.saturating_sub(1)).collect();
    if length > 0 {
        cut.push('…');
    }
    Value::from(cut)
}

/// Appends `text` escaped for HTML (what autoescaping does) to `out`.
pub(crate) fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
}

/// The text of a value for the HTML filters: markup already (a safe string, e.g. the output
/// of `urlize`) is kept as it is, anything else is escaped.
fn html_of(value: &Value) -> String {
    if value.is_undefined() || value.is_none() {
        return String::new();
    }
    let text = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
    if value.is_safe() {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    escape(&text, &mut out);
    out
}

/// Plain text to HTML: blank lines separate `<p>` paragraphs, single newlines become `<br>`.
/// The text is escaped first (unless it is markup already, as after `urlize`).
fn linebreaks(value: Value) -> Value {
    let html = html_of(&value).replace("\r\n", "\n").replace('\r', "\n");
    let mut paragraphs = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in html.split('\n') {
        if line.trim().is_empty() {
            if !current.is_empty() {
                paragraphs.push(format!("<p>{}</p>", current.join("<br>")));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        paragraphs.push(format!("<p>{}</p>", current.join("<br>")));
    }
    Value::from_safe_string(paragraphs.join("\n\n"))
}

/// Escapes the text and links its `http://` and `https://` URLs, with
/// `rel="nofollow noopener"`: user-written links neither pass ranking nor get a handle on
/// this page. Punctuation closing a sentence is left out of the link. Markup already (a safe
/// string) is returned as it is: linking inside it would need an HTML parser.
fn urlize(value: Value) -> Value {
    if value.is_safe() {
        return value;
    }
    if value.is_undefined() || value.is_none() {
        return Value::from_safe_string(String::new());
    }
    let text = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text.as_str();
    while let Some((start, end)) = next_url(rest) {
        escape(&rest[..start], &mut out);
        let url = &rest[start..end];
        out.push_str("<a href=\"");
        escape(url, &mut out);
        out.push_str("\" rel=\"nofollow noopener\">");
        escape(url, &mut out);
        out.push_str("</a>");
        rest = &rest[end..];
    }
    escape(rest, &mut out);
    Value::from_safe_string(out)
}

/// The byte range of the first http(s) URL in `text` that starts a word.
fn next_url(text: &str) -> Option<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("http") {
        let start = from + found;
        from = start + 4;
        let word_start = text[..start].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let scheme = ["https://", "http://"].into_iter().find(|s| lower[start..].starts_with(s));
        let (true, Some(scheme)) = (word_start, scheme) else {
            continue;
        };
        let len = text[start..]
            .find(|c: char| c.is_whitespace() || c.is_control() || "<>\"'`".contains(c))
            .unwrap_or(text.len() - start);
        let mut url = &text[start..start + len];
        loop {
            let trimmed = url.trim_end_matches(['.', ',', ':', ';', '!', '?']);
            // A closing parenthesis belongs to the URL only when the URL opened one.
            let unbalanced = trimmed.matches('(').count() < trimmed.matches(')').count();
            let trimmed = match trimmed.strip_suffix(')') {
                Some(t) if unbalanced => t,
                _ => trimmed,
            };
            let trimmed = trimmed.strip_suffix(']').unwrap_or(trimmed);
            if trimmed.len() == url.len() {
                break;
            }
            url = trimmed;
        }
        if url.len() > scheme.len() {
            return Some((start, start + url.len()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use minijinja::{Environment, context};

    use super::*;

    fn render(source: &str, ctx: Value) -> String {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        register(&mut env);
        env.render_str(source, ctx).unwrap_or_else(|e| panic!("{source}: {e:#}"))
    }

    fn at(s: &str) -> OffsetDateTime {
        parse_time(&Value::from(s)).unwrap_or_else(|| panic!("not a time: {s}"))
    }

    #[test]
    fn date_and_time_read_burrow_timestamps_and_formats() {
        let v = context! { t => "2026-03-05T14:07:09Z" };
        assert_eq!(render("{{ t|date }}", v.clone()), "5 Mar 2026");
        assert_eq!(render("{{ t|time }}", v.clone()), "14:07");
        assert_eq!(
            render("{{ t|date('%Y-%m-%d %H:%M:%S %Z') }}", v.clone()),
            "2026-03-05 14:07:09 UTC"
        );
        assert_eq!(
            render("{{ t|date('%A %-d %B %y, %-I:%M %p (%j) %%') }}", v.clone()),
            "Thursday 5 March 26, 2:07 PM (064) %"
        );
        assert_eq!(render("{{ t|time('%T') }} {{ t|date('%F') }}", v), "14:07:09 2026-03-05");
        // Offsets and fractions are converted to UTC; a bare date is midnight; Unix seconds.
        assert_eq!(strftime(at("2026-03-05T23:30:00.123+02:00"), "%F %T"), "2026-03-05 21:30:00");
        assert_eq!(strftime(at("2026-03-05 01:30:00-0130"), "%F %T"), "2026-03-05 03:00:00");
        assert_eq!(strftime(at("2026-03-05"), "%F %T"), "2026-03-05 00:00:00");
        assert_eq!(render("{{ 0|date('%F %T') }}", context! {}), "1970-01-01 00:00:00");
        // Unknown directives are copied.
        assert_eq!(render("{{ t|date('%Q %-Q') }}", context! { t => "2026-03-05" }), "%Q %-Q");
    }

    #[test]
    fn what_is_not_a_time_comes_back_unchanged() {
        for bad in [
            "soon",
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-30",
            "2026-03-05T25:00:00Z",
            "2026-03-05T10:00:00+5",
            "2026-03-05T10:00:00.Z",
            "2026-03-05Txx",
            "２０２６-03-05",
            "<b>2026</b>",
        ] {
            for f in ["date", "time", "naturaltime", "naturalday", "date('%F')"] {
                let out = render(&format!("{{{{ v|{f} }}}}"), context! { v => bad });
                let mut escaped = String::new();
                escape(bad, &mut escaped);
                assert_eq!(out, escaped.replace('/', "&#x2f;"), "{f} of {bad:?}");
            }
        }
        assert_eq!(render("[{{ v|date }}][{{ n|naturaltime }}]", context! { n => () }), "[][]");
        assert_eq!(render("{{ v|date }}", context! { v => vec![1, 2] }), "[1, 2]");
    }

    #[test]
    fn naturaltime_says_how_long_ago_or_until() {
        let now = at("2026-03-05T12:00:00Z");
        let cases = [
            ("2026-03-05T12:00:00Z", "just now"),
            ("2026-03-05T11:59:01Z", "just now"),
            ("2026-03-05T12:00:59Z", "just now"),
            ("2026-03-05T11:59:00Z", "1 minute ago"),
            ("2026-03-05T11:57:00Z", "3 minutes ago"),
            ("2026-03-05T12:05:00Z", "in 5 minutes"),
            ("2026-03-05T10:00:00Z", "2 hours ago"),
            ("2026-03-05T13:00:00Z", "in 1 hour"),
            ("2026-03-04T12:00:00Z", "1 day ago"),
            ("2026-03-01T09:00:00Z", "4 days ago"),
            ("2026-02-26T12:00:00Z", "26 Feb 2026"),
            ("2026-04-01T00:00:00Z", "1 Apr 2026"),
        ];
        for (t, expected) in cases {
            assert_eq!(naturaltime(at(t), now), expected, "{t}");
        }
        // Through the filter, against the real clock.
        let now = crate::db::utc_now();
        assert_eq!(render("{{ t|naturaltime }}", context! { t => now }), "just now");
    }

    #[test]
    fn naturalday_names_the_days_next_to_today() {
        let now = at("2026-03-05T00:10:00Z");
        assert_eq!(naturalday(at("2026-03-05T23:59:59Z"), now, None), "today");
        assert_eq!(naturalday(at("2026-03-04T23:59:59Z"), now, None), "yesterday");
        assert_eq!(naturalday(at("2026-03-06"), now, None), "tomorrow");
        assert_eq!(naturalday(at("2026-03-07"), now, None), "7 Mar 2026");
        assert_eq!(naturalday(at("2025-03-03"), now, Some("%F")), "2025-03-03");
        let today = crate::db::utc_now();
        assert_eq!(render("{{ t|naturalday }}", context! { t => today }), "today");
    }

    #[test]
    fn intcomma_groups_thousands() {
        let cases: [(Value, &str); 9] = [
            (Value::from(1234567), "1,234,567"),
            (Value::from(-1234567), "-1,234,567"),
            (Value::from(999), "999"),
            (Value::from(1000), "1,000"),
            (Value::from(0), "0"),
            (Value::from(1234.5), "1,234.5"),
            (Value::from("123456"), "123,456"),
            (Value::from("12a"), "12a"),
            (Value::from(""), ""),
        ];
        for (v, expected) in cases {
            assert_eq!(render("{{ v|intcomma }}", context! { v => v.clone() }), expected, "{v:?}");
        }
        assert_eq!(render("{{ v|intcomma }}", context! { v => () }), "None");
    }

    #[test]
    fn filesizeformat_reads_like_django() {
        let cases: [(Value, &str); 9] = [
            (Value::from(0), "0 bytes"),
            (Value::from(1), "1 byte"),
            (Value::from(1023), "1023 bytes"),
            (Value::from(1024), "1.0 KB"),
            (Value::from(1_258_291), "1.2 MB"),
            (Value::from(123_456_789), "117.7 MB"),
            (Value::from(1_u64 << 40), "1.0 TB"),
            (Value::from(-2048), "-2.0 KB"),
            (Value::from("2048"), "2.0 KB"),
        ];
        for (v, expected) in cases {
            assert_eq!(render("{{ v|filesizeformat }}", context! { v => v.clone() }), expected);
        }
        assert_eq!(render("{{ v|filesizeformat }}", context! { v => "big" }), "big");
    }

    #[test]
    fn pluralize_follows_django() {
        let t = "{{ n }} note{{ n|pluralize }}, cherr{{ n|pluralize('y,ies') }}, \
                 walrus{{ n|pluralize('es') }}";
        assert_eq!(render(t, context! { n => 1 }), "1 note, cherry, walrus");
        assert_eq!(render(t, context! { n => 0 }), "0 notes, cherries, walruses");
        assert_eq!(render(t, context! { n => 2 }), "2 notes, cherries, walruses");
        assert_eq!(render("{{ n|pluralize }}", context! { n => 1.0 }), "");
        assert_eq!(render("{{ n|pluralize }}", context! { n => "1" }), "");
        assert_eq!(render("{{ n|pluralize }}", context! { n => "3" }), "s");
        assert_eq!(render("{{ n|pluralize }}", context! { n => vec![1] }), "");
        assert_eq!(render("{{ n|pluralize }}", context! { n => vec![1, 2] }), "s");
        // Unreadable values and too many suffixes give nothing, never an error.
        assert_eq!(render("[{{ n|pluralize }}]", context! { n => "many" }), "[]");
        assert_eq!(render("[{{ n|pluralize('a,b,c') }}]", context! { n => 2 }), "[]");
        assert_eq!(render("[{{ n|pluralize }}]", context! {}), "[]");
    }

    #[test]
    fn truncatechars_counts_characters_and_the_ellipsis() {
        let v = context! { s => "Héllo wörld" };
        assert_eq!(render("{{ s|truncatechars(20) }}", v.clone()), "Héllo wörld");
        assert_eq!(render("{{ s|truncatechars(11) }}", v.clone()), "Héllo wörld");
        assert_eq!(render("{{ s|truncatechars(7) }}", v.clone()), "Héllo …");
        assert_eq!(render("{{ s|truncatechars(1) }}", v.clone()), "…");
        assert_eq!(render("[{{ s|truncatechars(0) }}]", v), "[]");
        assert_eq!(render("{{ s|truncatechars(4) }}", context! { s => "<b>bold" }), "&lt;b&gt;…");
        assert_eq!(render("{{ s|truncatechars(4) }}", context! { s => 123456 }), "123…");
    }

    #[test]
    fn linebreaks_escapes_then_makes_paragraphs() {
        let text = "First <script>alert(1)</script>\nline two\r\n\r\n\n  \nSecond & last\n";
        assert_eq!(
            render("{{ t|linebreaks }}", context! { t => text }),
            "<p>First &lt;script&gt;alert(1)&lt;/script&gt;<br>line two</p>\n\n<p>Second &amp; last</p>"
        );
        assert_eq!(render("[{{ t|linebreaks }}]", context! { t => "" }), "[]");
        assert_eq!(render("[{{ t|linebreaks }}]", context! {}), "[]");
        assert_eq!(render("{{ t|linebreaks }}", context! { t => 42 }), "<p>42</p>");
    }

    #[test]
    fn urlize_escapes_and_links_http_urls_only() {
        let link = |u: &str| format!("<a href=\"{u}\" rel=\"nofollow noopener\">{u}</a>");
        let cases = [
            (
                "see https://example.com/a?b=1&c=2.",
                format!("see {}.", link("https://example.com/a?b=1&amp;c=2")),
            ),
            ("(http://x.org/wiki/A_(b)) and", format!("({}) and", link("http://x.org/wiki/A_(b)"))),
            ("HTTPS://Caps.example", link("HTTPS://Caps.example")),
            (
                "<script>alert(1)</script> http://a.b/<script>",
                format!(
                    "&lt;script&gt;alert(1)&lt;/script&gt; {}&lt;script&gt;",
                    link("http://a.b/")
                ),
            ),
            (
                "javascript:alert(1) ftp://x.y xhttp://no http:// done",
                "javascript:alert(1) ftp://x.y xhttp://no http:// done".to_string(),
            ),
            (
                "\"http://q.example/\"onmouseover=x",
                format!("&quot;{}&quot;onmouseover=x", link("http://q.example/")),
            ),
        ];
        for (text, expected) in cases {
            let out = render("{{ t|urlize }}", context! { t => text });
            assert_eq!(out, expected, "{text}");
            assert!(!out.contains("<script"), "{out}");
        }
        assert_eq!(
            render("{{ t|urlize|linebreaks }}", context! { t => "a <b>\n\nhttps://e.x" }),
            format!("<p>a &lt;b&gt;</p>\n\n<p>{}</p>", link("https://e.x"))
        );
        assert_eq!(render("[{{ t|urlize }}]", context! {}), "[]");
    }
}
