//! The built-in rules, and reading one field: trim, required, parse, rules.

use super::data::FormData;
use super::errors::Errors;
use super::field::{Field, FieldValue};
use super::message::Message;

/// Reads one field of a submission and checks its rules; every problem goes to `errors`.
/// `None` when the value could not be read (blank but required, or not a number).
/// Generated code calls this for every field, then the field's `custom` rules.
pub fn read_field<T: FieldValue>(data: &FormData, field: &Field, errors: &mut Errors) -> Option<T> {
    if T::FILE {
        return read_file(data, field, errors);
    }
    let raw = data.get(field.name);
    let text = if field.trim { raw.map(str::trim) } else { raw };
    // Whitespace alone fills nothing in, trimmed or not.
    let blank = text.is_none_or(|t| t.trim().is_empty());
    if blank && field.required {
        errors.add(field.name, Message::new("required"));
        return None;
    }
    let value = match T::parse(text) {
        Ok(value) => value,
        Err(message) => {
            errors.add(field.name, message);
            return None;
        }
    };
    // Rules judge what was entered; an optional field left blank has nothing to judge.
    if let Some(text) = text.filter(|_| !blank) {
        for message in check_text(field, text).into_iter().chain(check_number(field, &value)) {
            errors.add(field.name, message);
        }
    }
    Some(value)
}

/// A file field: the first file sent under its name, its size and its sniffed type.
fn read_file<T: FieldValue>(data: &FormData, field: &Field, errors: &mut Errors) -> Option<T> {
    let file = data.file(field.name);
    if file.is_none() && field.required {
        errors.add(field.name, Message::new("required"));
        return None;
    }
    let value = match T::from_file(file) {
        Ok(value) => value,
        Err(message) => {
            errors.add(field.name, message);
            return None;
        }
    };
    let file = file?;
    if let Some(max) = field.max_size.filter(|max| file.size() > *max) {
        errors.add(
            field.name,
            Message::new("file_size")
                .arg("max", size_text(max))
                .arg("size", size_text(file.size())),
        );
    }
    if let Some(accept) = field.accept
        && !accepts(accept, file.sniffed())
    {
        errors.add(field.name, Message::new("file_type").arg("allowed", accept.replace(',', ", ")));
    }
    Some(value)
}

/// Whether a sniffed type is one of `accept`'s (`image/png`, or `image/*` for a family).
/// A file whose bytes show no known type is never accepted.
pub(crate) fn accepts(accept: &str, sniffed: Option<&str>) -> bool {
    let Some(sniffed) = sniffed else { return false };
    accept.split(',').map(str::trim).any(|wanted| match wanted.strip_suffix("/*") {
        Some(family) => sniffed.split('/').next() == Some(family),
        None => wanted.eq_ignore_ascii_case(sniffed),
    })
}

/// `10 MB`, `512 KB`, `900 bytes`: sizes in messages, in the units of `--max-body-size`.
fn size_text(bytes: u64) -> String {
    const KB: u64 = 1 << 10;
    const MB: u64 = 1 << 20;
    match bytes {
        b if b >= MB && b % MB == 0 => format!("{} MB", b / MB),
        b if b >= MB => format!("{:.1} MB", b as f64 / MB as f64),
        b if b >= KB => format!("{} KB", b.div_ceil(KB)),
        b => format!("{b} bytes"),
    }
}

/// The rules about the entered text.
fn check_text(field: &Field, text: &str) -> Vec<Message> {
    let mut found = Vec::new();
    let length = text.chars().count();
    if let Some(min) = field.min_length.filter(|min| length < *min) {
        found.push(Message::new("min_length").arg("min", min).arg("length", length));
    }
    if let Some(max) = field.max_length.filter(|max| length > *max) {
        found.push(Message::new("max_length").arg("max", max).arg("length", length));
    }
    if field.email && !is_email(text) {
        found.push(Message::new("email"));
    }
    if field.url && !is_url(text) {
        found.push(Message::new("url"));
    }
    if let Some(pattern) = field.regex.filter(|p| !p.is_match(text)) {
        found.push(Message::new("regex").arg("pattern", pattern.source()));
    }
    if !field.choices.is_empty() && !field.choices.iter().any(|(value, _)| *value == text) {
        found.push(Message::new("choice").arg("value", text.to_string()));
    }
    found
}

/// `min` and `max` on the parsed number.
fn check_number<T: FieldValue>(field: &Field, value: &T) -> Option<Message> {
    let n = value.number()?;
    if let Some(min) = field.min.filter(|min| n < *min) {
        return Some(Message::new("min").arg("min", min));
    }
    field.max.filter(|max| n > *max).map(|max| Message::new("max").arg("max", max))
}

/// One `@` between a local part and a domain of dot-separated labels, no spaces: what a
/// mail server could accept, not the whole of RFC 5322 (whether the mailbox exists is
/// only known by writing to it).
pub fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else { return false };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    text.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && !local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c))
        && domain.contains('.')
        && domain.split('.').all(label_ok)
}

/// An absolute http or https URL with a host and no whitespace: the links a form may
/// store and show (never `javascript:`).
pub fn is_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    !host.is_empty()
        && !host.starts_with(':')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}
