//! The byte format of checkpoints: a small fixed header, then the state in
//! [postcard](https://docs.rs/postcard) (a compact, maintained serde format).
//!
//! ```text
//! magic "EPCK" | kind u8 | 0 u8 | version u16 LE | payload length u64 LE | CRC-32 of payload u32 LE | payload
//! ```
//!
//! The design choice: postcard is not self-describing, so a payload is only
//! ever read by the code that wrote it. The header says which state it holds
//! (`kind`: the engine's or the decoder's) and in which schema (`version`,
//! bumped with every change to a snapshot type, which a golden test pins);
//! the length and checksum catch truncated or damaged files before a single
//! field is decoded. Whatever the bytes, reading them gives a value or an
//! error, never a panic.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Which state a checkpoint holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// [`crate::engine::EngineSnapshot`].
    Engine,
    /// The decoder's state (`ingest::DecoderSnapshot`).
    Decoder,
    /// The live service's checkpoint file: both of the above and the source
    /// positions they cover (written by the binary).
    Service,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
            Kind::Engine => b'E',
            Kind::Decoder => b'D',
            Kind::Service => b'S',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Engine => "engine",
            Kind::Decoder => "decoder",
            Kind::Service => "service",
        }
    }
}

const MAGIC: &[u8; 4] = b"EPCK";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not an epicenter checkpoint ({len} bytes, no EPCK header)")]
    NotACheckpoint { len: usize },
    #[error("a {found} checkpoint where a {expected} checkpoint was expected")]
    WrongKind {
        expected: &'static str,
        found: String,
    },
    #[error(
        "{kind} checkpoint format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        kind: &'static str,
        found: u16,
        supported: u16,
    },
    #[error("checkpoint truncated or padded: header says {expected} payload bytes, found {found}")]
    Length { expected: u64, found: u64 },
    #[error("checkpoint damaged: payload checksum {found:08x}, header says {expected:08x}")]
    Checksum { expected: u32, found: u32 },
    #[error("{kind} checkpoint payload does not decode: {source}")]
    Decode {
        kind: &'static str,
        source: postcard::Error,
    },
    #[error("{kind} checkpoint payload has {extra} bytes after the state")]
    Trailing { kind: &'static str, extra: usize },
    #[error("{kind} state does not encode: {source}")]
    Encode {
        kind: &'static str,
        source: postcard::Error,
    },
}

pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// Writes `value` as a checkpoint of `kind` in schema `version`.
pub fn encode<T: Serialize>(kind: Kind, version: u16, value: &T) -> Result<Vec<u8>> {
    // Measured first, so the buffer is allocated once (a checkpoint may be
    // a hundred megabytes: no doubling and copying).
    let size = postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .map_err(|source| FormatError::Encode {
            kind: kind.as_str(),
            source,
        })?;
    let mut out = Vec::with_capacity(HEADER_LEN + size);
    out.extend_from_slice(MAGIC);
    out.push(kind.tag());
    out.push(0);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&[0; 12]); // length and checksum, below
    let mut out = postcard::to_extend(value, out).map_err(|source| FormatError::Encode {
        kind: kind.as_str(),
        source,
    })?;
    reseal(&mut out);
    Ok(out)
}

/// Writes the length and checksum of the payload that follows the header
/// of `bytes` into that header; false when `bytes` has no header.
///
/// [`encode`] ends with it. Outside of that it is for fuzzing only: it
/// lets mutated bytes reach the decoding that the checksum guards
/// (`src/fuzzing.rs`), since a checksum cannot catch a bug of ours that
/// wrote a whole, wrong checkpoint. A reader never reseals.
pub fn reseal(bytes: &mut [u8]) -> bool {
    if bytes.len() < HEADER_LEN || !bytes.starts_with(MAGIC) {
        return false;
    }
    let payload = &bytes[HEADER_LEN..];
    let len = payload.len() as u64;
    let crc = crc32fast::hash(payload);
    bytes[8..16].copy_from_slice(&len.to_le_bytes());
    bytes[16..20].copy_from_slice(&crc.to_le_bytes());
    true
}

/// Reads a checkpoint of `kind` written in schema `version`.
pub fn decode<T: DeserializeOwned>(kind: Kind, version: u16, bytes: &[u8]) -> Result<T> {
    let header = bytes
        .get(..HEADER_LEN)
        .filter(|h| h.starts_with(MAGIC))
        .ok_or(FormatError::NotACheckpoint { len: bytes.len() })?;
    let field = |range: std::ops::Range<usize>| -> [u8; 8] {
        let mut b = [0; 8];
        b[..range.len()].copy_from_slice(&header[range]);
        b
    };
    if header[4] != kind.tag() {
        let found = match header[4] {
            b'E' => Kind::Engine.as_str().to_string(),
            b'D' => Kind::Decoder.as_str().to_string(),
            b'S' => Kind::Service.as_str().to_string(),
            other => format!("unknown (kind byte {other:#04x})"),
        };
        return Err(FormatError::WrongKind {
            expected: kind.as_str(),
            found,
        });
    }
    let found_version = u16::from_le_bytes([header[6], header[7]]);
    if found_version != version {
        return Err(FormatError::UnsupportedVersion {
            kind: kind.as_str(),
            found: found_version,
            supported: version,
        });
    }
    let len = u64::from_le_bytes(field(8..16));
    let crc = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err(FormatError::Length {
            expected: len,
            found: payload.len() as u64,
        });
    }
    let actual = crc32fast::hash(payload);
    if actual != crc {
        return Err(FormatError::Checksum {
            expected: crc,
            found: actual,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(payload).map_err(|source| FormatError::Decode {
            kind: kind.as_str(),
            source,
        })?;
    if !rest.is_empty() {
        return Err(FormatError::Trailing {
            kind: kind.as_str(),
            extra: rest.len(),
        });
    }
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_every_damage() {
        let value: (String, Vec<u64>) = ("state".into(), vec![1, 2, 300]);
        let bytes = encode(Kind::Engine, 3, &value).unwrap();
        let back: (String, Vec<u64>) = decode(Kind::Engine, 3, &bytes).unwrap();
        assert_eq!(back, value);

        let err = |b: &[u8]| decode::<(String, Vec<u64>)>(Kind::Engine, 3, b).unwrap_err();
        assert!(matches!(err(&[]), FormatError::NotACheckpoint { .. }));
        assert!(matches!(
            err(b"{\"json\": true}"),
            FormatError::NotACheckpoint { .. }
        ));
        assert!(matches!(
            decode::<(String, Vec<u64>)>(Kind::Decoder, 3, &bytes).unwrap_err(),
            FormatError::WrongKind { .. }
        ));
        assert!(matches!(
            decode::<(String, Vec<u64>)>(Kind::Engine, 4, &bytes).unwrap_err(),
            FormatError::UnsupportedVersion { found: 3, .. }
        ));
        assert!(matches!(
            err(&bytes[..bytes.len() - 1]),
            FormatError::Length { .. }
        ));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert!(matches!(err(&flipped), FormatError::Checksum { .. }));
        // Resealed, the damage reaches the decoding (the fuzz targets' way
        // past the checksum), which refuses it.
        flipped.push(0);
        assert!(reseal(&mut flipped));
        assert!(matches!(
            err(&flipped),
            FormatError::Trailing { extra: 1, .. }
        ));
        assert!(!reseal(&mut b"{}".to_vec()));
        // Every prefix is an error, none a panic.
        for n in 0..bytes.len() {
            assert!(decode::<(String, Vec<u64>)>(Kind::Engine, 3, &bytes[..n]).is_err());
        }
        let msg = decode::<(String, Vec<u64>)>(Kind::Engine, 4, &bytes)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "engine checkpoint format version 3 is not supported (this build reads version 4)"
        );
    }
}
