//! Header values ntfy reads back exactly as written.
//!
//! HTTP header values are ASCII; ntfy runs every header parameter through
//! Go's `mime.WordDecoder.DecodeHeader`, so non-ASCII text travels as
//! RFC 2047 encoded words (`=?UTF-8?B?...?=`). Design choice: a value is
//! either sent as it is (printable ASCII without `=?`, which the decoder
//! would try to read as an encoded word) or encoded whole, as a run of
//! base64 words of at most 75 characters split on character boundaries and
//! separated by spaces, which the decoder drops between adjacent words.
//! Control characters (a newline in a title) are turned into spaces first:
//! a header cannot carry them.

/// The longest encoded word RFC 2047 allows.
const MAX_WORD: usize = 75;
/// `=?UTF-8?B?` and `?=`.
const WORD_OVERHEAD: usize = "=?UTF-8?B?".len() + "?=".len();
/// Input bytes per word: base64 turns 3 bytes into 4 characters.
const BYTES_PER_WORD: usize = (MAX_WORD - WORD_OVERHEAD) / 4 * 3;

/// `value` as a header value ntfy decodes back to it (control characters
/// aside, which become spaces).
pub(super) fn encode(value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.is_ascii() && !clean.contains("=?") {
        return clean;
    }
    let mut out = String::with_capacity(clean.len() * 2);
    let mut rest = clean.as_str();
    while !rest.is_empty() {
        let mut end = rest.len().min(BYTES_PER_WORD);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str("=?UTF-8?B?");
        base64(&rest.as_bytes()[..end], &mut out);
        out.push_str("?=");
        rest = &rest[end..];
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = String::new();
            base64(input.as_bytes(), &mut out);
            assert_eq!(out, want, "{input}");
        }
    }

    #[test]
    fn ascii_passes_and_the_rest_is_encoded_in_short_words() {
        assert_eq!(encode("Disk full on node-1"), "Disk full on node-1");
        assert_eq!(encode("line\nbreak"), "line break");
        assert!(encode("a =?b?").starts_with("=?UTF-8?B?"));
        let title = "Überlastung 🚨 节点 ".repeat(20);
        let encoded = encode(&title);
        assert!(encoded.is_ascii());
        for word in encoded.split(' ') {
            assert!(word.len() <= MAX_WORD, "{word}");
            assert!(word.starts_with("=?UTF-8?B?") && word.ends_with("?="));
        }
    }
}
