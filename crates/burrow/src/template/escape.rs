//! HTML autoescaping, as minijinja's but faster: the environment's formatter.
//!
//! minijinja's own formatter scans a string byte by byte to learn whether it needs
//! escaping, scans it again to escape it, and writes each piece through `core::fmt`: on a
//! page of a dozen rows that was a tenth of the page's instructions. This one looks at 16
//! bytes at a time for the six characters minijinja escapes and writes the pieces between
//! them straight to the output. The output is byte for byte minijinja's (the tests compare
//! the two); values other than unsafe strings, and other escape modes, go to minijinja's
//! formatter.

use std::fmt::Write;

use minijinja::value::Value;
use minijinja::{AutoEscape, Error, Output, State};

/// The environment's formatter ([`minijinja::Environment::set_formatter`]).
pub(crate) fn formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if let (AutoEscape::Html, Some(text)) = (state.auto_escape(), value.as_str())
        && !value.is_safe()
    {
        return write_html_escaped(out, text).map_err(Error::from);
    }
    minijinja::escape_formatter(out, state, value)
}

/// The characters minijinja's `HtmlEscape` replaces, and what with.
const ENTITIES: [(u8, &str); 6] = [
    (b'<', "&lt;"),
    (b'>', "&gt;"),
    (b'&', "&amp;"),
    (b'"', "&quot;"),
    (b'\'', "&#x27;"),
    (b'/', "&#x2f;"),
];

/// Writes `text` with the [`ENTITIES`]' characters replaced.
fn write_html_escaped(out: &mut impl Write, text: &str) -> std::fmt::Result {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(found) = next_special(bytes, start) {
        let entity = ENTITIES.iter().find(|(special, _)| *special == bytes[found]);
        // Every special character is ASCII, so `found` is on a character boundary.
        out.write_str(&text[start..found])?;
        out.write_str(entity.map_or("", |(_, entity)| entity))?;
        start = found + 1;
    }
    out.write_str(&text[start..])
}

/// Whether minijinja escapes `byte` in HTML.
fn is_special(byte: u8) -> bool {
    ENTITIES.iter().any(|(special, _)| *special == byte)
}

/// The position of the first special byte in `bytes[from..]`.
#[cfg(target_arch = "x86_64")]
fn next_special(bytes: &[u8], from: usize) -> Option<usize> {
    if bytes.len() < 16 {
        return bytes[from..].iter().position(|&b| is_special(b)).map(|i| from + i);
    }
    let mut at = from;
    loop {
        // The last 16 bytes when fewer than 16 are left: the ones before `at` among them
        // were looked at already, and are masked off.
        let load = at.min(bytes.len() - 16);
        let mask = special_mask(bytes, load) >> (at - load);
        if mask != 0 {
            return Some(at + mask.trailing_zeros() as usize);
        }
        at = load + 16;
        if at >= bytes.len() {
            return None;
        }
    }
}

/// Bit `i` set when `bytes[at + i]` is special, for the 16 bytes from `at`.
#[cfg(target_arch = "x86_64")]
fn special_mask(bytes: &[u8], at: usize) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };
    let chunk = &bytes[at..at + 16];
    // SAFETY: `chunk` is 16 bytes long, and the load needs no alignment. SSE2, which the
    // intrinsics need, is part of every x86_64 CPU (and on in the target's baseline).
    unsafe {
        let chunk = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
        let found = ENTITIES.iter().fold(_mm_setzero_si128(), |found, (special, _)| {
            _mm_or_si128(found, _mm_cmpeq_epi8(chunk, _mm_set1_epi8(*special as i8)))
        });
        _mm_movemask_epi8(found) as u32
    }
}

/// The position of the first special byte in `bytes[from..]`.
#[cfg(not(target_arch = "x86_64"))]
fn next_special(bytes: &[u8], from: usize) -> Option<usize> {
    bytes[from..].iter().position(|&b| is_special(b)).map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use minijinja::{Environment, context};

    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        write_html_escaped(&mut out, text).unwrap();
        out
    }

    /// minijinja's own formatter and this one, on the same template and value.
    fn both(source: &str, value: Value) -> (String, String) {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        let theirs = env.render_str(source, context! { v => value.clone() }).unwrap();
        env.set_formatter(formatter);
        (theirs, env.render_str(source, context! { v => value }).unwrap())
    }

    #[test]
    fn escapes_every_special_character_at_every_position() {
        // Each special character at each offset of a string longer than one 16-byte step,
        // so both the vector scan and the tail find it.
        for special in ['<', '>', '&', '"', '\'', '/'] {
            for len in [1, 15, 16, 17, 31, 32, 40] {
                for at in 0..len {
                    let mut text: String = "a".repeat(len);
                    text.replace_range(at..at + 1, &special.to_string());
                    let (theirs, ours) = both("{{ v }}", Value::from(text.clone()));
                    assert_eq!(ours, theirs, "{text:?}");
                    assert_ne!(ours, text, "{text:?} was not escaped");
                }
            }
        }
    }

    #[test]
    fn same_output_as_minijinja() {
        let texts = [
            "",
            "plain text, nothing to escape at all in this line of more than sixteen bytes",
            "Nice page <script>alert(\"hi\")</script> & thanks",
            "Привет from far away, with ümlauts and emoji 🦀 & <b>",
            "1 < 2 && 3 > 2 is still true",
            "</></></></></></></></>",
            "'''''''''''''''''''''''''''''''''",
            "12345",
        ];
        for text in texts {
            assert_eq!(escaped(text), both("{{ v }}", Value::from(text)).0, "{text:?}");
            let (theirs, ours) = both("{{ v }} {{ v|safe }} {{ v|upper }}", Value::from(text));
            assert_eq!(ours, theirs, "{text:?}");
        }
        // Values that are not strings take minijinja's path.
        for value in [
            Value::from(42),
            Value::from(-7),
            Value::from(1.5),
            Value::from(true),
            Value::from(()),
            Value::UNDEFINED,
            Value::from(vec!["<a>", "b"]),
            Value::from_safe_string("<b>safe</b>".into()),
        ] {
            let (theirs, ours) = both("[{{ v }}]", value.clone());
            assert_eq!(ours, theirs, "{value:?}");
        }
    }

    #[test]
    fn leaves_text_templates_unescaped() {
        let mut env = Environment::new();
        env.set_formatter(formatter);
        env.add_template("a.txt", "{{ v }}").unwrap();
        env.add_template("a.html", "{{ v }}").unwrap();
        let ctx = context! { v => "<&>" };
        assert_eq!(env.get_template("a.txt").unwrap().render(&ctx).unwrap(), "<&>");
        assert_eq!(env.get_template("a.html").unwrap().render(&ctx).unwrap(), "&lt;&amp;&gt;");
    }
}
