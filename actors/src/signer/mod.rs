//! Signing DeltaDeFi orders: the operation key, decrypted once at start-up with the trading
//! passcode, derived to the payment key m/1852'/1815'/0'/0/0, signs the blake2b-256 hash of a
//! built transaction's body bytes; the vkey witness is added without re-encoding anything else.
//!
//! Pure code (no actix, no I/O). The key is zeroized on drop and never printed: `Debug` shows
//! only the public key hash, and no error carries key material.

pub mod cbor;
pub mod key;

use blake2::Blake2b;
use blake2::digest::{Digest, consts::U28, consts::U32};

pub use cbor::CborError;
pub use key::{KeyError, XPrv};

/// Why a transaction could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("transaction hex is not hex")]
    Hex,
    #[error("transaction: {0}")]
    Cbor(#[from] CborError),
}

/// The payment key that signs orders.
pub struct Signer {
    key: XPrv,
    vkey: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(key_hash={})", self.key_hash_hex())
    }
}

/// blake2b-256.
pub fn blake2b256(b: &[u8]) -> [u8; 32] {
    Blake2b::<U32>::digest(b).into()
}

/// blake2b-224 (Cardano key hash).
pub fn blake2b224(b: &[u8]) -> [u8; 28] {
    Blake2b::<U28>::digest(b).into()
}

impl Signer {
    /// A signer for the payment key derived from a root `xprv`.
    pub fn from_root(root: &XPrv) -> Signer {
        let key = root.derive_path(&key::PAYMENT_PATH);
        let vkey = key.public();
        Signer { key, vkey }
    }

    /// Decrypts DeltaDeFi's `encrypted_operation_key` with the trading passcode.
    ///
    /// # Errors
    /// [`KeyError`] for a wrong passcode or a malformed record or key.
    pub fn from_encrypted(record: &str, passcode: &str) -> Result<Signer, KeyError> {
        let xprv = key::decrypt_operation_key(record, passcode)?;
        Ok(Signer::from_root(&XPrv::from_bech32(&xprv)?))
    }

    /// The payment verification key.
    pub fn vkey(&self) -> [u8; 32] {
        self.vkey
    }

    /// Hex blake2b-224 of the verification key (what DeltaDeFi calls `operation_key_hash`,
    /// presumably; unconfirmed).
    pub fn key_hash_hex(&self) -> String {
        hex::encode(blake2b224(&self.vkey))
    }

    /// Signs an unsigned transaction (hex) and returns the complete signed transaction (hex).
    ///
    /// # Errors
    /// [`SignError`] when the hex or the CBOR is malformed.
    pub fn sign_tx_hex(&self, tx_hex: &str) -> Result<String, SignError> {
        let tx = hex::decode(tx_hex.trim()).map_err(|_| SignError::Hex)?;
        Ok(hex::encode(self.sign_tx(&tx)?))
    }

    /// Signs an unsigned transaction's bytes.
    ///
    /// # Errors
    /// [`SignError::Cbor`] when the bytes are not a transaction.
    pub fn sign_tx(&self, tx: &[u8]) -> Result<Vec<u8>, SignError> {
        let parts = cbor::split_tx(tx)?;
        let tx_id = blake2b256(&tx[parts.body.clone()]);
        let sig = self.key.sign(&tx_id);
        let ws = cbor::add_vkey_witness(&tx[parts.witness_set.clone()], &self.vkey, &sig)?;
        let mut out = Vec::with_capacity(tx.len() + 110);
        out.extend_from_slice(&tx[parts.header.clone()]);
        out.extend_from_slice(&tx[parts.body.clone()]);
        out.extend_from_slice(&ws);
        out.extend_from_slice(&tx[parts.rest.clone()]);
        Ok(out)
    }
}

/// Checks that a signed transaction carries a valid signature by `vkey` over its body: what
/// the mock exchange verifies on submit.
///
/// # Errors
/// A message naming what is missing or wrong.
pub fn verify_signed_tx(tx: &[u8], vkey: &[u8; 32]) -> Result<(), String> {
    let parts = cbor::split_tx(tx).map_err(|e| e.to_string())?;
    let tx_id = blake2b256(&tx[parts.body.clone()]);
    let ws = &tx[parts.witness_set.clone()];
    // Find `5820 <vkey> 5840 <sig>` inside the witness set.
    let mut needle = vec![0x58, 0x20];
    needle.extend_from_slice(vkey);
    needle.extend_from_slice(&[0x58, 0x40]);
    let at = ws
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .ok_or("no witness by this key")?;
    let sig_bytes: [u8; 64] = ws
        .get(at + needle.len()..at + needle.len() + 64)
        .and_then(|s| s.try_into().ok())
        .ok_or("truncated witness")?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(vkey).map_err(|e| e.to_string())?;
    vk.verify_strict(&tx_id, &ed25519_dalek::Signature::from_bytes(&sig_bytes))
        .map_err(|_| "bad signature".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Spec §3.7 (a): python-sdk tests/clients/test_sign.py, root key for mnemonic "summer" × 24.
    const ROOT_XPRV: &str = "xprv19rumsw6emgv48dlcsthsk5z7a7008qp2wzf97cearz457pthd3wzyj6we3skrtv49ccezv3t25u4ykw5f3msgjs32cph5hrlf0gjkas458erpxveuznjq58sfg3v02mz820lnl9zf03hmaeca785d6kqsuyk403s";
    const ROOT_HEX: &str = "28f9b83b59da1953b7f882ef0b505eef9ef3802a70925f633d18ab4f05776c5c224b4ecc6161ad952e3191322b55395259d44c77044a1156037a5c7f4bd12b7615a1f2309999e0a72050f04a22c7ab623a9ff9fca24be37df738ef8f46eac087";
    const UNSIGNED: &str = "84a4008182582004509185eb98edd8e2420c1ceea914d6a7a3142041039b2f12b4d4f03162d56f04018282581d605867c3b8e27840f556ac268b781578b14c5661fc63ee720dbeab663f1a000f42408258390004845038ee499ee8bc0afe56f688f27b2dd76f230d3698a9afcc1b66e0464447c1f51adaefe1ebfb0dd485a349a70479ced1d198cbdf7fe71a15d35396021a0002917d075820bdaa99eb158414dea0a91d6c727e2268574b23efe6e08ab3b841abe8059a030ca0f5d90103a0";
    const SIGNED_TAIL: &str = "a1008182582089f4b576f05f5aad99bce0bdd51afe48529772f7561bb2ac9d84a4afbda1ecd658404cd1466fcc4579fa9c89656dbbd25ca659cccf2d2783417ef13a1b060bf836fbe8383c10e25c6fa323c1c81a0799e87e6cf3eaa25990113b27953a9836635a01f5d90103a0";
    // Spec §3.7 (b) and (c).
    const RECORD: &str = r#"{"iv":"XRAGv22SYgpZiGhy","salt":"5YowN2Txol1ejcvt9gJB1A==","ciphertext":"SUJcKVu5/yLVXvcVRI0xLTT+HN0j0JQc2YGL4uwmdErIAa4ZwTkfaKP3VNlclBeXoRfRqCRw9ioYZLSrZOsUlSKRDIGkrfHamZw3Nt+bTwWgzAecWmLOeU8Ks1ou6iQa1K9Yqt2+zJi6rDJfkEFEZJBOjC0iFnmeIMemYVD5UexqIkTlGZcKzwW57WU4HPKHpri/PhupcPRVpbZaNurCTB9tfnDLsr83zgHqSFILOdnSwvUaMA=="}"#;
    const LEGACY: &str = r#"{"iv":"/bs1AzciZ1bDqT5W","ciphertext":"mh5pgH8ErqqH2KLLEBqqr8Pwm+mUuh9HhaAHslSD8ho6zk7mXccc9NUQAW8rb9UajCq8LYyANuiorjYD5N0hd2Lbe2n1x8AGRZrogyRKW6uhoFD1/FW6ofjgGP/kQRQSW2ZdJaDMbCxwYSdzxmaRunk6JRfybhfRU6kIxPMu41jhhRC3LbwZ+NnfBJFrg859hbuQgMQm8mqOUgOxcK8kKH54shOpGuLT4YBXhx33dZ//wT5VXrQ8kwIKttNk5h9MNKCacpRZSqU3pGlZ5oxucNEGos0IKTTXfbmwYx14uiERcXd32OP2"}"#;

    fn root() -> XPrv {
        XPrv::from_bech32(ROOT_XPRV).expect("root decodes")
    }

    #[test]
    fn vector_a_bech32_root_and_derived_payment_key() {
        let from_hex = XPrv::from_bytes(&hex::decode(ROOT_HEX).expect("hex")).expect("96 bytes");
        assert_eq!(root().public(), from_hex.public());
        let signer = Signer::from_root(&root());
        assert_eq!(
            hex::encode(signer.vkey()),
            "89f4b576f05f5aad99bce0bdd51afe48529772f7561bb2ac9d84a4afbda1ecd6"
        );
    }

    #[test]
    fn vector_a_signed_transaction_byte_for_byte() {
        let unsigned = hex::decode(UNSIGNED).expect("hex");
        let parts = cbor::split_tx(&unsigned).expect("splits");
        assert_eq!(
            hex::encode(blake2b256(&unsigned[parts.body.clone()])),
            "73acc5520882e87e83d465fc3e20caaef55818b57a3a35951d316743a5511bf6"
        );
        let signed = Signer::from_root(&root())
            .sign_tx_hex(UNSIGNED)
            .expect("signs");
        let body_hex = hex::encode(&unsigned[..parts.body.end]);
        assert_eq!(signed, format!("{body_hex}{SIGNED_TAIL}"));
        let vkey = Signer::from_root(&root()).vkey();
        assert_eq!(
            verify_signed_tx(&hex::decode(&signed).expect("hex"), &vkey),
            Ok(())
        );
    }

    #[test]
    fn tampered_body_is_not_covered_by_the_signature() {
        let signer = Signer::from_root(&root());
        let signed = hex::decode(signer.sign_tx_hex(UNSIGNED).expect("signs")).expect("hex");
        let mut tampered = signed.clone();
        // The fee (last body field before the witness set): 0x0002917d -> 0x0002917e.
        let fee_at = tampered
            .windows(5)
            .position(|w| w == [0x1a, 0x00, 0x02, 0x91, 0x7d])
            .expect("fee")
            + 4;
        tampered[fee_at] ^= 0x03;
        assert_eq!(
            verify_signed_tx(&tampered, &signer.vkey()),
            Err("bad signature".to_string())
        );
        // A truncated transaction is a clear error, not a panic.
        let cut = &UNSIGNED[..UNSIGNED.len() - 10];
        assert!(matches!(signer.sign_tx_hex(cut), Err(SignError::Cbor(_))));
        assert_eq!(signer.sign_tx_hex("zz"), Err(SignError::Hex));
    }

    #[test]
    fn vector_b_decrypts_with_the_passcode_and_refuses_a_wrong_one() {
        let plain = key::decrypt_operation_key(RECORD, "testing123456").expect("decrypts");
        assert_eq!(plain.len(), 165);
        assert!(plain.starts_with("xprv1kz9nxfr"));
        let signer = Signer::from_encrypted(RECORD, "testing123456").expect("usable key");
        assert_eq!(
            hex::encode(signer.vkey()),
            "663dda822d270f80cd52776b6a599a99b7a710f76d11d4bc4de06b6f369b7b90"
        );
        assert_eq!(
            signer.key_hash_hex(),
            "34204975e6f59b19d02ac6eeca521c1183c91c2abffaeb69901d33e4"
        );
        let err = Signer::from_encrypted(RECORD, "wrongPassword").expect_err("wrong passcode");
        assert_eq!(err, KeyError::Decrypt);
        assert!(!err.to_string().contains("xprv"));
        // Debug never shows key material.
        let dbg = format!("{signer:?}");
        assert_eq!(
            dbg,
            "Signer(key_hash=34204975e6f59b19d02ac6eeca521c1183c91c2abffaeb69901d33e4)"
        );
    }

    #[test]
    fn vector_c_legacy_record_without_salt() {
        let plain = key::decrypt_operation_key(LEGACY, "01234567890123456789").expect("decrypts");
        assert_eq!(plain.as_str(), vec!["solution"; 24].join(" "));
    }

    #[test]
    fn malformed_records_and_keys_are_named() {
        assert!(matches!(
            key::decrypt_operation_key("{}", "x"),
            Err(KeyError::Record(_))
        ));
        assert_eq!(
            key::decrypt_operation_key(r#"{"iv":"!!","ciphertext":"AA=="}"#, "x"),
            Err(KeyError::Base64 { field: "iv" })
        );
        assert_eq!(
            key::decrypt_operation_key(r#"{"iv":"AAAA","ciphertext":"AA=="}"#, "x"),
            Err(KeyError::IvLength(3))
        );
        let mut bad = ROOT_XPRV.to_string();
        bad.pop();
        bad.push('q');
        assert_eq!(
            XPrv::from_bech32(&bad).map(|_| ()),
            Err(KeyError::Bech32("bad checksum"))
        );
        assert_eq!(format!("{:?}", root()), "XPrv(<redacted>)");
    }
}
