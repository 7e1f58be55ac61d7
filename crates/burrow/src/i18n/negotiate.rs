//! Which of the site's languages a request gets: the visitor's choice (the language
//! cookie the switcher sets), else the best match for `Accept-Language`, else the default.

use axum::http::{HeaderMap, HeaderValue, header};

/// The cookie the language switcher sets (`POST /i18n/language`).
pub const LANGUAGE_COOKIE: &str = "lang";

/// The index in `tags` (lower-case language tags) of the language for a request with
/// `headers`, if the cookie or `Accept-Language` names one the site has.
pub(crate) fn choose(tags: &[String], headers: &HeaderMap) -> Option<usize> {
    chosen(tags, headers.get_all(header::COOKIE)).or_else(|| {
        let accept = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
        accept_language(tags, accept)
    })
}

/// The index of the language the visitor chose with the switcher (the cookie, among a
/// request's `Cookie` header values), if the site has it.
pub(crate) fn chosen<'a>(
    tags: &[String],
    cookies: impl IntoIterator<Item = &'a HeaderValue>,
) -> Option<usize> {
    exact(tags, crate::request::cookies(cookies, LANGUAGE_COOKIE).next()?)
}

fn exact(tags: &[String], wanted: &str) -> Option<usize> {
    tags.iter().position(|t| t.eq_ignore_ascii_case(wanted))
}

/// RFC 4647 lookup over the ranges by descending quality (ties keep their order): a range
/// matches the same tag, then its shorter prefixes (`de-AT` → `de`), then a regional
/// variant the site has (`de` → `de-CH`). `*` and `q=0` ranges choose nothing.
fn accept_language(tags: &[String], header: &str) -> Option<usize> {
    let mut ranges: Vec<(&str, u16)> = (header.split(','))
        .take(32)
        .filter_map(|part| {
            let mut fields = part.split(';');
            let range = fields.next()?.trim();
            let quality = fields
                .find_map(|f| f.trim().strip_prefix("q="))
                .map_or(Some(1000), parse_quality)?;
            let valid = !range.is_empty()
                && range.len() <= 35
                && range.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            (valid && quality > 0).then_some((range, quality))
        })
        .collect();
    ranges.sort_by_key(|(_, q)| std::cmp::Reverse(*q));
    ranges.iter().find_map(|(range, _)| {
        let mut prefix = *range;
        loop {
            if let Some(found) = exact(tags, prefix) {
                return Some(found);
            }
            match prefix.rsplit_once('-') {
                Some((shorter, _)) => prefix = shorter,
                None => break,
            }
        }
        tags.iter().position(|t| {
            t.split_once('-').is_some_and(|(base, _)| base.eq_ignore_ascii_case(prefix))
        })
    })
}

/// A quality value (`0`, `0.8`, `1.000`) in thousandths; `None` if it is not one.
fn parse_quality(q: &str) -> Option<u16> {
    let (whole, fraction) = q.split_once('.').unwrap_or((q, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn accept_language_matching() {
        let site = tags(&["en", "de", "pt-br"]);
        let pick = |header: &str| accept_language(&site, header).map(|i| site[i].as_str());
        assert_eq!(pick("de"), Some("de"));
        assert_eq!(pick("de-AT,de;q=0.9"), Some("de"));
        assert_eq!(pick("fr-FR,fr;q=0.9"), None);
        assert_eq!(pick("fr-FR,fr;q=0.9,de;q=0.5"), Some("de"));
        assert_eq!(pick("de;q=0.8,en;q=0.9"), Some("en"));
        assert_eq!(pick("DE-ch"), Some("de"));
        assert_eq!(pick("pt"), Some("pt-br"));
        assert_eq!(pick("pt-PT"), Some("pt-br"));
        assert_eq!(pick("de;q=0,en;q=0.1"), Some("en"));
        assert_eq!(pick("*"), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick("de;q=2,en;q=0.5"), Some("en"));
        assert_eq!(pick("<script>,de;q=abc,en"), Some("en"));
    }

    #[test]
    fn the_cookie_wins_over_the_header() {
        let site = tags(&["en", "de"]);
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, "en".parse().unwrap());
        assert_eq!(choose(&site, &headers), Some(0));
        headers.insert(header::COOKIE, "session=abc; lang=DE".parse().unwrap());
        assert_eq!(choose(&site, &headers), Some(1));
        // A cookie naming a language the site lacks is ignored.
        headers.insert(header::COOKIE, "lang=fr".parse().unwrap());
        assert_eq!(choose(&site, &headers), Some(0));
        assert_eq!(choose(&site, &HeaderMap::new()), None);
    }

    #[test]
    fn quality_values() {
        assert_eq!(parse_quality("1"), Some(1000));
        assert_eq!(parse_quality("1.000"), Some(1000));
        assert_eq!(parse_quality("0.8"), Some(800));
        assert_eq!(parse_quality("0.005"), Some(5));
        assert_eq!(parse_quality("0"), Some(0));
        for bad in ["1.5", "2", "0.1234", "-1", "x", "0.a"] {
            assert_eq!(parse_quality(bad), None, "{bad}");
        }
    }
}
