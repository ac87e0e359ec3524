//! The operation key: decryption of DeltaDeFi's encrypted record, the bech32 `xprv` root key,
//! Cardano BIP32-Ed25519 ("V2") derivation and extended-key signing with ed25519-dalek.
//!
//! Key material lives only in memory, in types that are zeroized on drop and whose `Debug`
//! prints nothing secret.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{Aes256Gcm, AesGcm};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use curve25519_dalek::{EdwardsPoint, Scalar};
use ed25519_dalek::hazmat::{ExpandedSecretKey, raw_sign};
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Sha256, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Why the operation key cannot be used. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("encrypted operation key is not the expected JSON record: {0}")]
    Record(String),
    #[error("encrypted operation key field {field} is not base64")]
    Base64 { field: &'static str },
    #[error("unsupported IV length {0} (12 or 16 bytes)")]
    IvLength(usize),
    #[error("cannot decrypt the operation key: wrong trading passcode or corrupted record")]
    Decrypt,
    #[error("decrypted operation key is not UTF-8 text")]
    NotText,
    #[error("operation key is not a valid bech32 xprv: {0}")]
    Bech32(&'static str),
    #[error("xprv must hold 96 bytes, got {0}")]
    Length(usize),
}

#[derive(Deserialize)]
struct Record {
    iv: String,
    #[serde(default)]
    salt: Option<String>,
    ciphertext: String,
}

/// PBKDF2-HMAC-SHA256 iterations of DeltaDeFi's key encryption.
pub const PBKDF2_ROUNDS: u32 = 100_000;

/// Decrypts an `encrypted_operation_key` record (`{"iv","salt","ciphertext"}`, base64) with the
/// trading passcode. A missing or empty salt is the legacy form: zero bytes, as long as the IV.
///
/// # Errors
/// [`KeyError::Decrypt`] for a wrong passcode (the GCM tag does not verify), and the other
/// variants for a malformed record.
pub fn decrypt_operation_key(record: &str, passcode: &str) -> Result<Zeroizing<String>, KeyError> {
    let r: Record = serde_json::from_str(record).map_err(|e| KeyError::Record(e.to_string()))?;
    let iv = B64
        .decode(r.iv.trim())
        .map_err(|_| KeyError::Base64 { field: "iv" })?;
    let ciphertext = B64
        .decode(r.ciphertext.trim())
        .map_err(|_| KeyError::Base64 {
            field: "ciphertext",
        })?;
    let salt = match r.salt.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => B64
            .decode(s)
            .map_err(|_| KeyError::Base64 { field: "salt" })?,
        _ => vec![0u8; iv.len()],
    };
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(passcode.as_bytes(), &salt, PBKDF2_ROUNDS, key.as_mut());
    let plain = match iv.len() {
        12 => Aes256Gcm::new_from_slice(key.as_ref())
            .map_err(|_| KeyError::Decrypt)?
            .decrypt(
                iv.as_slice()
                    .try_into()
                    .map_err(|_| KeyError::IvLength(12))?,
                ciphertext.as_slice(),
            ),
        16 => AesGcm::<Aes256, aes_gcm::aead::consts::U16>::new_from_slice(key.as_ref())
            .map_err(|_| KeyError::Decrypt)?
            .decrypt(
                iv.as_slice()
                    .try_into()
                    .map_err(|_| KeyError::IvLength(16))?,
                ciphertext.as_slice(),
            ),
        n => return Err(KeyError::IvLength(n)),
    }
    .map_err(|_| KeyError::Decrypt)?;
    let plain = Zeroizing::new(plain);
    let text = std::str::from_utf8(&plain).map_err(|_| KeyError::NotText)?;
    Ok(Zeroizing::new(text.to_string()))
}

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn polymod(values: &[u8]) -> u32 {
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(*v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn hrp_expand(hrp: &str) -> Vec<u8> {
    let mut v: Vec<u8> = hrp.bytes().map(|c| c >> 5).collect();
    v.push(0);
    v.extend(hrp.bytes().map(|c| c & 31));
    v
}

/// Encodes bytes as bech32 (not bech32m) with `hrp`, of any length.
pub fn bech32_encode(hrp: &str, data: &[u8]) -> String {
    let mut five = Vec::with_capacity(data.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in data {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            five.push(((acc >> bits) & 31) as u8);
        }
    }
    if bits > 0 {
        five.push(((acc << (5 - bits)) & 31) as u8);
    }
    let mut values = hrp_expand(hrp);
    values.extend(&five);
    values.extend([0u8; 6]);
    let pm = polymod(&values) ^ 1;
    let mut s = format!("{hrp}1");
    for v in five
        .iter()
        .copied()
        .chain((0..6).map(|i| ((pm >> (5 * (5 - i))) & 31) as u8))
    {
        s.push(char::from(CHARSET[usize::from(v)]));
    }
    s
}

/// Decodes a bech32 (not bech32m) string of any length; returns (hrp, data bytes).
///
/// # Errors
/// [`KeyError::Bech32`] naming what is wrong (never echoing the input).
pub fn bech32_decode(s: &str) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    if s.bytes().any(|c| c.is_ascii_uppercase()) && s.bytes().any(|c| c.is_ascii_lowercase()) {
        return Err(KeyError::Bech32("mixed case"));
    }
    let s = s.to_ascii_lowercase();
    let sep = s.rfind('1').ok_or(KeyError::Bech32("no separator"))?;
    let (hrp, data) = (&s[..sep], &s[sep + 1..]);
    if hrp.is_empty() || data.len() < 6 {
        return Err(KeyError::Bech32("too short"));
    }
    let mut values = Zeroizing::new(hrp_expand(hrp));
    let start = values.len();
    for c in data.bytes() {
        let v = CHARSET
            .iter()
            .position(|x| *x == c)
            .ok_or(KeyError::Bech32("invalid character"))?;
        values.push(v as u8);
    }
    if polymod(&values) != 1 {
        return Err(KeyError::Bech32("bad checksum"));
    }
    let five = &values[start..values.len() - 6];
    let mut out = Zeroizing::new(Vec::with_capacity(five.len() * 5 / 8));
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in five {
        acc = (acc << 5) | u32::from(*v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits >= 5 || (acc << (8 - bits)) & 0xff != 0 {
        return Err(KeyError::Bech32("bad padding"));
    }
    acc.zeroize();
    Ok((hrp.to_string(), out))
}

/// A BIP32-Ed25519 extended private key: kL ‖ kR ‖ chain code.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct XPrv {
    kl: [u8; 32],
    kr: [u8; 32],
    cc: [u8; 32],
}

impl std::fmt::Debug for XPrv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XPrv(<redacted>)")
    }
}

/// Hardened index offset.
pub const HARDENED: u32 = 0x8000_0000;

/// The payment key path DeltaDeFi's SDKs use: m/1852'/1815'/0'/0/0.
pub const PAYMENT_PATH: [u32; 5] = [HARDENED + 1852, HARDENED + 1815, HARDENED, 0, 0];

type HmacSha512 = Hmac<Sha512>;

fn hmac512(key: &[u8; 32], parts: &[&[u8]]) -> Zeroizing<[u8; 64]> {
    let mut out = Zeroizing::new([0u8; 64]);
    // HMAC accepts keys of any length; new_from_slice cannot fail here.
    if let Ok(mut m) = HmacSha512::new_from_slice(key) {
        for p in parts {
            m.update(p);
        }
        out.copy_from_slice(&m.finalize().into_bytes());
    }
    out
}

impl XPrv {
    /// Decodes a bech32 `xprv1…` string.
    ///
    /// # Errors
    /// [`KeyError`] for a wrong prefix, checksum or length.
    pub fn from_bech32(s: &str) -> Result<XPrv, KeyError> {
        let (hrp, bytes) = bech32_decode(s.trim())?;
        if hrp != "xprv" {
            return Err(KeyError::Bech32("prefix is not xprv"));
        }
        XPrv::from_bytes(&bytes)
    }

    /// Builds a key from 96 bytes kL ‖ kR ‖ cc.
    ///
    /// # Errors
    /// [`KeyError::Length`] for any other length.
    pub fn from_bytes(b: &[u8]) -> Result<XPrv, KeyError> {
        if b.len() != 96 {
            return Err(KeyError::Length(b.len()));
        }
        let mut k = XPrv {
            kl: [0; 32],
            kr: [0; 32],
            cc: [0; 32],
        };
        k.kl.copy_from_slice(&b[..32]);
        k.kr.copy_from_slice(&b[32..64]);
        k.cc.copy_from_slice(&b[64..]);
        Ok(k)
    }

    /// kL·B, the public key (kL as a little-endian scalar, no hashing, no clamping).
    pub fn public(&self) -> [u8; 32] {
        EdwardsPoint::mul_base(&Scalar::from_bytes_mod_order(self.kl))
            .compress()
            .to_bytes()
    }

    /// Derives one child (V2 scheme).
    pub fn derive(&self, index: u32) -> XPrv {
        let i = index.to_le_bytes();
        let (z, c) = if index >= HARDENED {
            (
                hmac512(&self.cc, &[&[0x00], &self.kl, &self.kr, &i]),
                hmac512(&self.cc, &[&[0x01], &self.kl, &self.kr, &i]),
            )
        } else {
            let a = self.public();
            (
                hmac512(&self.cc, &[&[0x02], &a, &i]),
                hmac512(&self.cc, &[&[0x03], &a, &i]),
            )
        };
        let mut child = XPrv {
            kl: [0; 32],
            kr: [0; 32],
            cc: [0; 32],
        };
        // kL' = kL + 8·ZL[0..28], kR' = kR + ZR, little-endian, carries past 256 bits dropped.
        let mut carry = 0u16;
        for j in 0..32 {
            // z[j] << 3 is up to 11 bits: its top 3 bits move on with the carry.
            let zl = if j < 28 { u16::from(z[j]) << 3 } else { 0 };
            let r = u16::from(self.kl[j]) + zl + carry;
            child.kl[j] = (r & 0xff) as u8;
            carry = r >> 8;
        }
        let mut carry = 0u16;
        for j in 0..32 {
            let r = u16::from(self.kr[j]) + u16::from(z[32 + j]) + carry;
            child.kr[j] = (r & 0xff) as u8;
            carry = r >> 8;
        }
        child.cc.copy_from_slice(&c[32..]);
        child
    }

    /// Derives along `path`.
    pub fn derive_path(&self, path: &[u32]) -> XPrv {
        path.iter().fold(self.clone(), |k, i| k.derive(*i))
    }

    /// Signs `msg` with the extended key: r = H(kR ‖ msg), S = r + H(R ‖ A ‖ msg)·kL.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let esk = ExpandedSecretKey {
            scalar: Scalar::from_bytes_mod_order(self.kl),
            hash_prefix: self.kr,
        };
        let vk = VerifyingKey::from(&esk);
        let sig: Signature = raw_sign::<Sha512>(&esk, msg, &vk);
        sig.to_bytes()
    }
}
