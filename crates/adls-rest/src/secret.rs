//! Types that hold secrets: account keys, SAS tokens, bearer tokens.
//!
//! None of them implements `Display`; their `Debug` prints a placeholder. The
//! only way to the secret is an explicit, grep-able `expose_secret()` call.

use std::fmt;

use base64::Engine as _;

use crate::error::{Error, ErrorKind};

/// What every secret type prints instead of its value.
pub const REDACTED: &str = "<redacted>";

/// A secret string (SAS token, bearer token, client secret).
///
/// ```
/// use adls_rest::secret::Secret;
///
/// let secret = Secret::new("client-secret-value");
/// assert_eq!(format!("{secret:?}"), "<redacted>");
/// assert_eq!(secret.expose_secret(), "client-secret-value"); // the one way in
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call sites are the places to audit.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// A storage account key, decoded from base64 when it is built, so signing
/// cannot fail. The HMAC key schedule is computed once here, not per request.
///
/// ```
/// # fn main() -> Result<(), adls_rest::Error> {
/// use adls_rest::connection_string::DEV_ACCOUNT_KEY;
/// use adls_rest::secret::AccountKey;
///
/// let key = AccountKey::from_base64(DEV_ACCOUNT_KEY)?;
/// assert!(!format!("{key:?}").contains(DEV_ACCOUNT_KEY));
/// // A bad key fails here, and the error does not echo it.
/// let e = AccountKey::from_base64("not-base64!").unwrap_err();
/// assert!(!e.to_string().contains("not-base64!"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AccountKey {
    bytes: Vec<u8>,
    mac: hmac::Hmac<sha2::Sha256>,
}

impl PartialEq for AccountKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for AccountKey {}

impl AccountKey {
    /// Decodes a base64 account key as shown in the Azure portal.
    ///
    /// The error names the problem but never echoes the key.
    pub fn from_base64(encoded: &str) -> Result<Self, Error> {
        let trimmed = encoded.trim();
        if trimmed.is_empty() {
            return Err(Error::new(
                ErrorKind::Credential,
                "account key is empty; expected the base64 key from the storage account's access keys",
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(trimmed)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Credential,
                    format!(
                        "account key is not valid base64 ({} characters; {e}); expected the key from the storage account's access keys",
                        trimmed.len()
                    ),
                )
            })?;
        use hmac::Mac as _;
        let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&bytes)
            .map_err(|_| Error::new(ErrorKind::Credential, "account key cannot key HMAC-SHA256"))?;
        Ok(AccountKey { bytes, mac })
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// HMAC-SHA256 keyed with this key, ready for `update`.
    pub(crate) fn mac(&self) -> hmac::Hmac<sha2::Sha256> {
        self.mac.clone()
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_values() {
        let s = Secret::new("sv=2024&sig=topsecret");
        assert_eq!(format!("{s:?}"), REDACTED);
        let k = AccountKey::from_base64("c2VjcmV0LWtleS1ieXRlcw==").expect("valid base64");
        assert_eq!(format!("{k:?}"), REDACTED);
        assert_eq!(k.bytes(), b"secret-key-bytes");
    }

    #[test]
    fn bad_key_is_typed_and_not_echoed() {
        let err = AccountKey::from_base64("not*base64*secretish").expect_err("invalid");
        assert_eq!(err.kind(), ErrorKind::Credential);
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("secretish"), "{shown}");
        let err = AccountKey::from_base64("  ").expect_err("empty");
        assert!(err.to_string().contains("empty"));
    }
}
