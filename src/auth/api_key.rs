//! The API key format: `sk_` + 64 lowercase hex = 28 random bytes + the CRC32 of
//! them. The checksum lets a typo or garbage be refused before any hashing or
//! lookup; only the SHA-256 of a key is ever stored.

use std::fmt;

use sha2::{Digest, Sha256};

const PREFIX: &str = "sk_";
const RANDOM_BYTES: usize = 28;
const KEY_BYTES: usize = RANDOM_BYTES + 4;
const KEY_LEN: usize = PREFIX.len() + 2 * KEY_BYTES;
/// `sk_` and the first 8 hex digits: what `GET /keys` shows of a key.
const DISPLAY_PREFIX_LEN: usize = PREFIX.len() + 8;

/// A well-formed key with a valid checksum. It can only be built by
/// [`ApiKey::generate`] or [`ApiKey::parse`], and it never prints itself.
/// Its text is kept inline (ASCII, fixed length): parsing one allocates nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey([u8; KEY_LEN]);

/// The SHA-256 of a key: what the cache knows a key by; the database stores it
/// hex encoded. Kept as bytes so the hot path neither allocates nor encodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormatError {
    Prefix,
    Length,
    NotLowercaseHex,
    Checksum,
}

impl ApiKey {
    /// A new key from the operating system's CSPRNG.
    ///
    /// # Errors
    /// When the OS cannot provide randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut random = [0u8; RANDOM_BYTES];
        getrandom::fill(&mut random)?;
        let checksum = crc32fast::hash(&random).to_be_bytes();
        let mut text = [0u8; KEY_LEN];
        let (prefix, hex_part) = text.split_at_mut(PREFIX.len());
        prefix.copy_from_slice(PREFIX.as_bytes());
        let (random_hex, checksum_hex) = hex_part.split_at_mut(2 * RANDOM_BYTES);
        hex::encode_to_slice(random, random_hex).expect("sized for the random bytes");
        hex::encode_to_slice(checksum, checksum_hex).expect("sized for the checksum");
        Ok(Self(text))
    }

    /// Accepts only `sk_` + 64 lowercase hex digits whose last 4 bytes are the CRC32
    /// of the first 28. Costs a few hundred nanoseconds; touches nothing else.
    ///
    /// # Errors
    /// Which rule the text breaks.
    pub fn parse(text: &str) -> Result<Self, KeyFormatError> {
        let hex_part = text.strip_prefix(PREFIX).ok_or(KeyFormatError::Prefix)?;
        if text.len() != KEY_LEN {
            return Err(KeyFormatError::Length);
        }
        if !hex_part
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(KeyFormatError::NotLowercaseHex);
        }
        let mut bytes = [0u8; KEY_BYTES];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| KeyFormatError::NotLowercaseHex)?;
        let (random, checksum) = bytes.split_at(RANDOM_BYTES);
        if crc32fast::hash(random).to_be_bytes() != checksum {
            return Err(KeyFormatError::Checksum);
        }
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(text.as_bytes());
        Ok(Self(key))
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0).into())
    }

    /// The part of the key that may be shown again, e.g. `sk_1a2b3c4d`.
    pub fn display_prefix(&self) -> &str {
        &self.reveal()[..DISPLAY_PREFIX_LEN]
    }

    /// The whole key, for the one response that reveals it.
    pub fn reveal(&self) -> &str {
        // `sk_` and hex digits, checked by `parse` or written by `generate`.
        std::str::from_utf8(&self.0).expect("a key is ASCII")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.display_prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_differ() {
        let key = ApiKey::generate().unwrap();
        assert_eq!(key.reveal().len(), 67);
        assert!(key.reveal().starts_with("sk_"));
        assert_eq!(ApiKey::parse(key.reveal()).unwrap(), key);
        assert_ne!(ApiKey::generate().unwrap(), key);
        assert_eq!(key.display_prefix(), &key.reveal()[..11]);
    }

    #[test]
    fn bad_prefix_is_refused() {
        let key = ApiKey::generate().unwrap();
        let other = key.reveal().replacen("sk_", "pk_", 1);
        assert_eq!(ApiKey::parse(&other), Err(KeyFormatError::Prefix));
        assert_eq!(
            ApiKey::parse(&key.reveal()[3..]),
            Err(KeyFormatError::Prefix)
        );
    }

    #[test]
    fn bad_length_is_refused() {
        let key = ApiKey::generate().unwrap();
        assert_eq!(
            ApiKey::parse(&key.reveal()[..66]),
            Err(KeyFormatError::Length)
        );
        assert_eq!(
            ApiKey::parse(&format!("{}0", key.reveal())),
            Err(KeyFormatError::Length)
        );
        assert_eq!(ApiKey::parse("sk_"), Err(KeyFormatError::Length));
    }

    #[test]
    fn uppercase_is_refused() {
        let key = ApiKey::generate().unwrap();
        let upper = format!("sk_{}", key.reveal()[3..].to_uppercase());
        assert_ne!(
            upper,
            key.reveal(),
            "a key of digits only would make this vacuous"
        );
        assert_eq!(ApiKey::parse(&upper), Err(KeyFormatError::NotLowercaseHex));
    }

    #[test]
    fn bad_checksum_is_refused() {
        let key = ApiKey::generate().unwrap();
        let mut chars: Vec<char> = key.reveal().chars().collect();
        chars[10] = if chars[10] == '0' { '1' } else { '0' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(ApiKey::parse(&typo), Err(KeyFormatError::Checksum));
    }

    #[test]
    fn non_ascii_is_refused_without_panicking() {
        let key = ApiKey::generate().unwrap();
        // 'é' is two bytes: same byte length as a key, but not hex.
        let text = format!("sk_é{}", &key.reveal()[5..]);
        assert_eq!(text.len(), 67);
        assert_eq!(ApiKey::parse(&text), Err(KeyFormatError::NotLowercaseHex));
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let hash = ApiKey::generate().unwrap().hash();
        assert_eq!(hash.to_hex().len(), 64);
        assert_eq!(KeyHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(KeyHash::from_hex("zz"), None);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKey::generate().unwrap();
        assert!(!format!("{key:?}").contains(&key.reveal()[11..]));
    }
}
