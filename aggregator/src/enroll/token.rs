//! Enrollment tokens: `picket1.<claims>.<mac>`, where `claims` is base64url JSON
//! `{id, account, exp, uses}` and `mac` its HMAC-SHA256 under a secret kept in the aggregator's
//! data folder (`enroll-token.key`, mode 0600).
//!
//! Tokens are self-contained so `enroll-token create` works while `serve` holds the sled store
//! (sled is single-process): creating one only needs the secret file, and nobody needs an
//! administrator certificate to mint tokens on the aggregator host. What the token cannot carry
//! — how often it was used — is counted by `serve` in the `enroll_tokens` tree, keyed by token
//! id, and the check-and-count is one sled transaction so two agents racing for the last use
//! cannot both win.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sled::transaction::{ConflictableTransactionError, TransactionError};

/// File name of the token secret inside the aggregator's data folder.
pub const SECRET_FILE: &str = "enroll-token.key";
/// Prefix of every token; the digit is the format's version.
const PREFIX: &str = "picket1.";
/// Bytes of secret: the HMAC-SHA256 block-size sweet spot (RFC 2104 recommends at least the
/// output length, 32).
const SECRET_LEN: usize = 32;
/// Longest token accepted before any parsing: real ones are about 200 bytes.
const MAX_TOKEN_LEN: usize = 1024;

/// Why a token could not be created or was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Occurs when the secret file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The secret file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Occurs when the secret file exists but is not 32 bytes.
    #[error("{path}: token secret must be {SECRET_LEN} bytes, found {len}")]
    BadSecret {
        /// The secret file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// Occurs when the text is not a Picket token at all.
    #[error("malformed enrollment token: {0}")]
    Malformed(&'static str),
    /// Occurs when the MAC does not match: forged, altered, or minted by another aggregator.
    #[error("enrollment token signature does not verify")]
    BadSignature,
    /// Occurs when the token's expiry has passed.
    #[error("enrollment token {id} expired at {expired_at} (unix seconds)")]
    Expired {
        /// Token id.
        id: String,
        /// Its expiry.
        expired_at: u64,
    },
    /// Occurs when every use of the token has been spent.
    #[error("enrollment token {id} has no uses left (all {uses} used)")]
    Exhausted {
        /// Token id.
        id: String,
        /// Uses the token allowed.
        uses: u32,
    },
    /// Occurs when the uses ledger cannot be read or written.
    #[error("token ledger: {0}")]
    Store(String),
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Random id; the key under which uses are counted.
    pub id: String,
    /// The only account whose instances may enroll with it.
    pub account: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Enrollments allowed.
    pub uses: u32,
}

/// The key tokens are signed with.
#[derive(Clone)]
pub struct TokenKey {
    secret: [u8; SECRET_LEN],
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// Loads `data_dir/enroll-token.key`, creating it (0600, random) when absent. Safe against
    /// `serve` and `enroll-token create` racing to create it: the loser reads the winner's.
    ///
    /// # Errors
    /// [`TokenError::Io`] or [`TokenError::BadSecret`] naming the file.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, TokenError> {
        let path = data_dir.join(SECRET_FILE);
        let io = |source| TokenError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(|source| TokenError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                let mut secret = [0u8; SECRET_LEN];
                rand::Rng::fill(&mut rand::rng(), &mut secret[..]);
                f.write_all(&secret).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(Self { secret })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let bytes = std::fs::read(&path).map_err(io)?;
                let secret = <[u8; SECRET_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
                    TokenError::BadSecret {
                        path: path.clone(),
                        len: bytes.len(),
                    }
                })?;
                Ok(Self { secret })
            }
            Err(e) => Err(io(e)),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    /// Mints a token for `account`, valid for `ttl_secs` from `now` (unix seconds), `uses` times.
    pub fn create(&self, account: &str, ttl_secs: u64, uses: u32, now: u64) -> (Claims, String) {
        let mut id = [0u8; 8];
        rand::Rng::fill(&mut rand::rng(), &mut id[..]);
        let claims = Claims {
            id: crate::certs::hex(&id),
            account: account.to_owned(),
            exp: now.saturating_add(ttl_secs),
            uses,
        };
        // Serializing a struct of strings and integers cannot fail.
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let body = URL_SAFE_NO_PAD.encode(json);
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let token = format!("{PREFIX}{body}.{tag}");
        (claims, token)
    }

    /// Checks the token's form, signature and expiry (at `now`, unix seconds); uses are
    /// counted separately by [`TokenLedger::spend`].
    ///
    /// # Errors
    /// [`TokenError::Malformed`], [`TokenError::BadSignature`] or [`TokenError::Expired`].
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long"));
        }
        let rest = token
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(TokenError::Malformed("does not start with picket1."))?;
        let (body, tag) = rest
            .split_once('.')
            .ok_or(TokenError::Malformed("no signature part"))?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        // Constant-time comparison, so response timing says nothing about the right MAC.
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TokenError::Malformed("claims are not base64url"))?;
        let claims: Claims = serde_json::from_slice(&json)
            .map_err(|_| TokenError::Malformed("claims are not the expected JSON"))?;
        if now >= claims.exp {
            return Err(TokenError::Expired {
                id: claims.id,
                expired_at: claims.exp,
            });
        }
        Ok(claims)
    }
}

/// Uses spent per token id, in the aggregator's sled store.
#[derive(Clone)]
pub struct TokenLedger {
    tree: sled::Tree,
}

impl TokenLedger {
    /// A ledger in `tree` (the store's `enroll_tokens`).
    pub fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }

    /// Spends one use of `claims`, atomically; returns the uses left after it.
    ///
    /// # Errors
    /// [`TokenError::Exhausted`] when none is left, [`TokenError::Store`] on sled failure.
    pub fn spend(&self, claims: &Claims) -> Result<u32, TokenError> {
        let key = claims.id.as_bytes();
        let result = self.tree.transaction(|tx| {
            let used = match tx.get(key)? {
                Some(v) => <[u8; 4]>::try_from(v.as_ref()).map_or(u32::MAX, u32::from_be_bytes),
                None => 0,
            };
            if used >= claims.uses {
                return Err(ConflictableTransactionError::Abort(()));
            }
            let used = used.saturating_add(1);
            tx.insert(key, &used.to_be_bytes())?;
            Ok(claims.uses.saturating_sub(used))
        });
        match result {
            Ok(left) => Ok(left),
            Err(TransactionError::Abort(())) => Err(TokenError::Exhausted {
                id: claims.id.clone(),
                uses: claims.uses,
            }),
            Err(TransactionError::Storage(e)) => Err(TokenError::Store(e.to_string())),
        }
    }
}

/// Parses a TTL such as `90s`, `30m`, `24h` or `7d` into seconds.
///
/// # Errors
/// A message naming the value when it is not a positive number with one of those units.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("--ttl must be a positive number with unit s, m, h or d (e.g. 24h), got {text:?}")
    };
    let text = text.trim();
    let unit_at = text.len().checked_sub(1).ok_or_else(bad)?;
    let (num, unit) = text.split_at(unit_at);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).filter(|s| *s > 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (tempfile::TempDir, TokenKey) {
        let dir = tempfile::tempdir().unwrap();
        let k = TokenKey::load_or_create(dir.path()).unwrap();
        (dir, k)
    }

    #[test]
    fn a_created_token_verifies_with_its_claims() {
        let (_d, k) = key();
        let (claims, token) = k.create("123456789012", 3600, 2, 1000);
        assert_eq!(k.verify(&token, 1001).unwrap(), claims);
        assert_eq!(claims.exp, 4600);
    }

    #[test]
    fn the_secret_is_private_and_reloaded_not_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let (d, k) = key();
        let (_, token) = k.create("123456789012", 60, 1, 0);
        let again = TokenKey::load_or_create(d.path()).unwrap();
        assert!(again.verify(&token, 1).is_ok());
        let mode = std::fs::metadata(d.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let (_d, k) = key();
        let (_, token) = k.create("123456789012", 60, 1, 0);
        assert!(matches!(
            k.verify(&token, 60),
            Err(TokenError::Expired { .. })
        ));
    }

    #[test]
    fn an_altered_or_foreign_token_is_refused() {
        let (_d, k) = key();
        let (_d2, other) = key();
        let (_, token) = k.create("123456789012", 60, 1, 0);
        assert!(matches!(
            other.verify(&token, 1),
            Err(TokenError::BadSignature)
        ));
        // Claims for another account under the original MAC.
        let (body, tag) = token.strip_prefix(PREFIX).unwrap().split_once('.').unwrap();
        let mut claims: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        claims.account = "999999999999".into();
        let forged = format!(
            "{PREFIX}{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        assert!(matches!(
            k.verify(&forged, 1),
            Err(TokenError::BadSignature)
        ));
        for junk in ["", "picket1.", "picket1.a.b", "hello", &"x".repeat(5000)] {
            assert!(k.verify(junk, 1).is_err(), "{junk}");
        }
    }

    #[test]
    fn uses_run_out() {
        let (d, k) = key();
        let db = sled::open(d.path().join("db")).unwrap();
        let ledger = TokenLedger::new(db.open_tree("t").unwrap());
        let (claims, _) = k.create("123456789012", 60, 2, 0);
        assert_eq!(ledger.spend(&claims).unwrap(), 1);
        assert_eq!(ledger.spend(&claims).unwrap(), 0);
        assert!(matches!(
            ledger.spend(&claims),
            Err(TokenError::Exhausted { uses: 2, .. })
        ));
    }

    #[test]
    fn ttls_parse_with_units() {
        assert_eq!(parse_ttl("24h"), Ok(86_400));
        assert_eq!(parse_ttl("90s"), Ok(90));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        for bad in ["", "h", "0h", "5", "5w", "-1h", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
