//! What a file is, from its first bytes (for uploads, `forms/upload.rs`, and the files
//! `storage` serves): its type by magic numbers (the `infer` crate),
//! never by its name or the type a client claims, and an image's width and height, read
//! from its header (PNG `IHDR`, GIF's screen descriptor, JPEG's `SOFn`, WebP's `VP8`/`VP8L`/
//! `VP8X` chunk).

/// How many first bytes of a file are kept to judge it: enough for every magic number,
/// and for a JPEG's frame header behind the usual metadata.
pub(crate) const HEAD_LEN: usize = 64 * 1024;

/// The MIME type `head` (a file's first bytes) shows, if it shows one.
pub(crate) fn content_type(head: &[u8]) -> Option<&'static str> {
    infer::get(head).map(|t| t.mime_type())
}

/// Images a browser shows itself, and that run no script: served inline. (SVG is not
/// among them: it is a document that may carry script.)
pub fn is_inline_image(content_type: &str) -> bool {
    matches!(content_type, "image/png" | "image/jpeg" | "image/gif" | "image/webp")
}

/// The file name extension for a sniffed type (`None` for types without a usual one).
pub(crate) fn extension(content_type: &str) -> Option<&'static str> {
    EXTENSIONS.iter().find(|(t, _)| *t == content_type).map(|(_, e)| *e)
}

const EXTENSIONS: &[(&str, &str)] = &[
    ("image/png", "png"),
    ("image/jpeg", "jpg"),
    ("image/gif", "gif"),
    ("image/webp", "webp"),
    ("application/pdf", "pdf"),
    ("application/zip", "zip"),
    ("application/gzip", "gz"),
    ("audio/mpeg", "mp3"),
    ("video/mp4", "mp4"),
];

/// Width and height of a PNG, GIF, JPEG or WebP whose first bytes are `head`.
pub(crate) fn dimensions(head: &[u8]) -> Option<(u32, u32)> {
    let le16 = |at: usize| Some(u16::from_le_bytes(head.get(at..at + 2)?.try_into().ok()?) as u32);
    let be32 = |at: usize| Some(u32::from_be_bytes(head.get(at..at + 4)?.try_into().ok()?));
    let le24 = |at: usize| {
        let b = head.get(at..at + 3)?;
        Some(b[0] as u32 | (b[1] as u32) << 8 | (b[2] as u32) << 16)
    };
    let found = if head.starts_with(b"\x89PNG\r\n\x1a\n") && head.get(12..16) == Some(b"IHDR") {
        (be32(16)?, be32(20)?)
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        (le16(6)?, le16(8)?)
    } else if head.starts_with(b"\xff\xd8") {
        jpeg(head)?
    } else if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        match head.get(12..16)? {
            b"VP8 " => (le16(26)? & 0x3fff, le16(28)? & 0x3fff),
            b"VP8L" => {
                let bits = u32::from_le_bytes(head.get(21..25)?.try_into().ok()?);
                ((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1)
            }
            b"VP8X" => (le24(24)? + 1, le24(27)? + 1),
            _ => return None,
        }
    } else {
        return None;
    };
    (found.0 > 0 && found.1 > 0).then_some(found)
}

/// A JPEG's size, from the first start-of-frame marker (`SOF0`..`SOF15` but `DHT` (C4),
/// `JPG` (C8) and `DAC` (CC)), walking the segments before it.
fn jpeg(head: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        // Markers may be padded with any number of 0xFF bytes.
        while *head.get(at)? == 0xff && *head.get(at + 1)? == 0xff {
            at += 1;
        }
        if *head.get(at)? != 0xff {
            return None;
        }
        let marker = *head.get(at + 1)?;
        let length = u16::from_be_bytes(head.get(at + 2..at + 4)?.try_into().ok()?) as usize;
        if (0xc0..=0xcf).contains(&marker) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let height = u16::from_be_bytes(head.get(at + 5..at + 7)?.try_into().ok()?);
            let width = u16::from_be_bytes(head.get(at + 7..at + 9)?.try_into().ok()?);
            return Some((width as u32, height as u32));
        }
        if length < 2 {
            return None;
        }
        at += 2 + length;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×2 PNG's signature and IHDR chunk (the rest does not matter to the sniffers).
    const PNG_HEAD: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x03\0\0\0\x02\x08\x06\0\0\0";

    #[test]
    fn types_come_from_the_bytes_and_sizes_from_the_headers() {
        assert_eq!(content_type(PNG_HEAD), Some("image/png"));
        assert_eq!(dimensions(PNG_HEAD), Some((3, 2)));
        assert_eq!(dimensions(b"GIF89a\x05\0\x07\0"), Some((5, 7)));
        // SOI, an APP0 segment of 16 bytes, then SOF0: precision 8, height 480, width 640.
        let mut jpeg = b"\xff\xd8\xff\xe0\x00\x10".to_vec();
        jpeg.extend([0; 14]);
        jpeg.extend(b"\xff\xc0\x00\x11\x08\x01\xe0\x02\x80\x03");
        assert_eq!(dimensions(&jpeg), Some((640, 480)));
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        webp.extend([0x1f, 0, 0, 0x0f, 0, 0]);
        assert_eq!(dimensions(&webp), Some((32, 16)));
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
        elf.resize(64, 0);
        assert_eq!(content_type(&elf), Some("application/x-executable"));
        assert_eq!(dimensions(&elf), None);
        assert_eq!(content_type(b"just some text"), None);
        assert_eq!(dimensions(&PNG_HEAD[..20]), None, "a cut header has no size");
        assert_eq!(extension("image/jpeg"), Some("jpg"));
        assert!(is_inline_image("image/png") && !is_inline_image("image/svg+xml"));
    }
}
