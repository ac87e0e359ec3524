//! Just enough CBOR to sign a Cardano transaction without re-encoding it: find the byte spans
//! of the transaction's elements, and add a vkey witness to the witness set while copying
//! every other byte unchanged.
//!
//! A transaction is `[body, witness_set, is_valid, auxiliary_data]` (older ones have three
//! elements). The body's bytes are hashed exactly as received; the witness set is rebuilt only
//! where the new witness goes: key 0's list gets one more entry (its tag 258 kept if present),
//! or key 0 is added first when absent.

use std::ops::Range;

/// Malformed or unsupported CBOR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    #[error("transaction ends early at byte {0}")]
    Truncated(usize),
    #[error("unsupported CBOR at byte {at}: {what}")]
    Unsupported { at: usize, what: &'static str },
    #[error("not a Cardano transaction: {0}")]
    NotATransaction(&'static str),
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

const MAX_DEPTH: usize = 64;

/// The head of one data item: major type, argument (or `None` for indefinite), header length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    major: u8,
    arg: Option<u64>,
    len: usize,
}

fn head(b: &[u8], at: usize) -> Result<Head, CborError> {
    let first = *b.get(at).ok_or(CborError::Truncated(at))?;
    let (major, info) = (first >> 5, first & 0x1f);
    let extra = match info {
        0..=23 => {
            return Ok(Head {
                major,
                arg: Some(u64::from(info)),
                len: 1,
            });
        }
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        31 if matches!(major, 2..=5 | 7) => {
            return Ok(Head {
                major,
                arg: None,
                len: 1,
            });
        }
        _ => {
            return Err(CborError::Unsupported {
                at,
                what: "reserved additional information",
            });
        }
    };
    let bytes = b
        .get(at + 1..at + 1 + extra)
        .ok_or(CborError::Truncated(at + 1))?;
    let arg = bytes.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
    Ok(Head {
        major,
        arg: Some(arg),
        len: 1 + extra,
    })
}

fn to_usize(n: u64, at: usize) -> Result<usize, CborError> {
    usize::try_from(n).map_err(|_| CborError::Truncated(at))
}

/// Returns the end of the data item starting at `at`.
fn skip(b: &[u8], at: usize, depth: usize) -> Result<usize, CborError> {
    if depth > MAX_DEPTH {
        return Err(CborError::TooDeep);
    }
    let h = head(b, at)?;
    let mut pos = at + h.len;
    match (h.major, h.arg) {
        (0 | 1, _) => Ok(pos),
        (2 | 3, Some(n)) => {
            let end = pos
                .checked_add(to_usize(n, at)?)
                .ok_or(CborError::Truncated(at))?;
            if end > b.len() {
                Err(CborError::Truncated(end))
            } else {
                Ok(end)
            }
        }
        (4 | 5, Some(n)) => {
            let items = if h.major == 5 {
                n.checked_mul(2).ok_or(CborError::Truncated(at))?
            } else {
                n
            };
            for _ in 0..items {
                pos = skip(b, pos, depth + 1)?;
            }
            Ok(pos)
        }
        (2..=5, None) => loop {
            if *b.get(pos).ok_or(CborError::Truncated(pos))? == 0xff {
                return Ok(pos + 1);
            }
            pos = skip(b, pos, depth + 1)?;
        },
        (6, _) => skip(b, pos, depth + 1),
        (7, Some(_)) => Ok(pos),
        _ => Err(CborError::Unsupported {
            at,
            what: "break outside an indefinite item",
        }),
    }
}

/// Byte spans of a transaction's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxParts {
    /// The array header.
    pub header: Range<usize>,
    pub body: Range<usize>,
    pub witness_set: Range<usize>,
    /// `is_valid` and auxiliary data, copied as they are.
    pub rest: Range<usize>,
}

/// Splits a transaction into its parts.
///
/// # Errors
/// [`CborError`] when the bytes are not one complete 3- or 4-element array.
pub fn split_tx(b: &[u8]) -> Result<TxParts, CborError> {
    let h = head(b, 0)?;
    if h.major != 4 || !matches!(h.arg, Some(3 | 4)) {
        return Err(CborError::NotATransaction(
            "expected an array of 3 or 4 elements",
        ));
    }
    let body_start = h.len;
    let body_end = skip(b, body_start, 1)?;
    if head(b, body_start)?.major != 5 {
        return Err(CborError::NotATransaction("the body is not a map"));
    }
    let wit_end = skip(b, body_end, 1)?;
    if head(b, body_end)?.major != 5 {
        return Err(CborError::NotATransaction("the witness set is not a map"));
    }
    let mut pos = wit_end;
    for _ in 2..h.arg.unwrap_or(4) {
        pos = skip(b, pos, 1)?;
    }
    if pos != b.len() {
        return Err(CborError::NotATransaction(
            "trailing bytes after the transaction",
        ));
    }
    Ok(TxParts {
        header: 0..h.len,
        body: body_start..body_end,
        witness_set: body_end..wit_end,
        rest: wit_end..pos,
    })
}

/// Minimal head encoding.
pub fn encode_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// `[vkey, signature]` as a CBOR array of two byte strings.
fn vkey_witness(vkey: &[u8; 32], sig: &[u8; 64]) -> Vec<u8> {
    let mut w = Vec::with_capacity(100);
    encode_head(4, 2, &mut w);
    encode_head(2, 32, &mut w);
    w.extend_from_slice(vkey);
    encode_head(2, 64, &mut w);
    w.extend_from_slice(sig);
    w
}

/// Returns the witness set `ws` with one more vkey witness.
///
/// # Errors
/// [`CborError`] for a witness set that is not a definite-length map, or whose key 0 is not a
/// definite-length list.
pub fn add_vkey_witness(ws: &[u8], vkey: &[u8; 32], sig: &[u8; 64]) -> Result<Vec<u8>, CborError> {
    let h = head(ws, 0)?;
    let Some(n) = h.arg.filter(|_| h.major == 5) else {
        return Err(CborError::Unsupported {
            at: 0,
            what: "witness set must be a definite-length map",
        });
    };
    let witness = vkey_witness(vkey, sig);
    let mut out = Vec::with_capacity(ws.len() + witness.len() + 4);
    let mut pos = h.len;
    let mut entries = Vec::new();
    for _ in 0..n {
        let key_end = skip(ws, pos, 1)?;
        let val_end = skip(ws, key_end, 1)?;
        entries.push((pos..key_end, key_end..val_end));
        pos = val_end;
    }
    let key0 = entries.iter().position(|(k, _)| ws[k.clone()] == [0x00]);
    match key0 {
        None => {
            encode_head(5, n + 1, &mut out);
            out.push(0x00);
            encode_head(4, 1, &mut out);
            out.extend_from_slice(&witness);
            out.extend_from_slice(&ws[h.len..pos]);
        }
        Some(i) => {
            out.extend_from_slice(&ws[..entries[i].1.start]);
            let v = entries[i].1.clone();
            let mut at = v.start;
            let mut vh = head(ws, at)?;
            if vh.major == 6 {
                // Keep a tag (258: set) as it is.
                out.extend_from_slice(&ws[at..at + vh.len]);
                at += vh.len;
                vh = head(ws, at)?;
            }
            let Some(count) = vh.arg.filter(|_| vh.major == 4) else {
                return Err(CborError::Unsupported {
                    at,
                    what: "vkey witnesses must be a definite-length list",
                });
            };
            encode_head(4, count + 1, &mut out);
            out.extend_from_slice(&ws[at + vh.len..v.end]);
            out.extend_from_slice(&witness);
            out.extend_from_slice(&ws[v.end..]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_skips() {
        // [1, h'0102', {"a": [true]}, tag(258)[]]
        let b = [
            0x84, 0x01, 0x42, 0x01, 0x02, 0xa1, 0x61, 0x61, 0x81, 0xf5, 0xd9, 0x01, 0x02, 0x80,
        ];
        assert_eq!(skip(&b, 0, 0), Ok(b.len()));
        assert_eq!(skip(&b[..5], 0, 0), Err(CborError::Truncated(5)));
        // indefinite byte string and array
        let ind = [0x9f, 0x5f, 0x41, 0xaa, 0xff, 0xff];
        assert_eq!(skip(&ind, 0, 0), Ok(6));
        let mut deep = vec![0x81; 100];
        deep.push(0x00);
        assert_eq!(skip(&deep, 0, 0), Err(CborError::TooDeep));
        let mut out = Vec::new();
        for n in [0u64, 23, 24, 255, 256, 65_535, 65_536, 1 << 40] {
            out.clear();
            encode_head(2, n, &mut out);
            assert_eq!(head(&out, 0).map(|h| (h.major, h.arg)), Ok((2, Some(n))));
        }
    }

    #[test]
    fn witness_goes_into_an_existing_list_keeping_its_tag() {
        let vkey = [7u8; 32];
        let sig = [9u8; 64];
        let w = vkey_witness(&vkey, &sig);
        // {0: 258([[h'..', h'..']]), 3: [h'aa']} with one existing witness
        let mut ws = vec![0xa2, 0x00, 0xd9, 0x01, 0x02, 0x81];
        ws.extend_from_slice(&w);
        ws.extend_from_slice(&[0x03, 0x81, 0x41, 0xaa]);
        let out = add_vkey_witness(&ws, &vkey, &sig).expect("adds");
        let mut want = vec![0xa2, 0x00, 0xd9, 0x01, 0x02, 0x82];
        want.extend_from_slice(&w);
        want.extend_from_slice(&w);
        want.extend_from_slice(&[0x03, 0x81, 0x41, 0xaa]);
        assert_eq!(out, want);
        // A map without key 0 gets it first; other entries are copied.
        let out = add_vkey_witness(&[0xa1, 0x03, 0x80], &vkey, &sig).expect("adds");
        let mut want = vec![0xa2, 0x00, 0x81];
        want.extend_from_slice(&w);
        want.extend_from_slice(&[0x03, 0x80]);
        assert_eq!(out, want);
        assert!(add_vkey_witness(&[0x80], &vkey, &sig).is_err());
    }

    #[test]
    fn not_transactions() {
        assert!(matches!(
            split_tx(&[0x82, 0xa0, 0xa0]),
            Err(CborError::NotATransaction(_))
        ));
        assert!(matches!(
            split_tx(&[0x84, 0x80, 0xa0, 0xf5, 0xf6]),
            Err(CborError::NotATransaction(_))
        ));
        assert!(matches!(
            split_tx(&[0x84, 0xa0, 0xa0, 0xf5, 0xf6, 0x00]),
            Err(CborError::NotATransaction(_))
        ));
        assert_eq!(
            split_tx(&[0x84, 0xa0, 0xa0, 0xf5, 0xf6]),
            Ok(TxParts {
                header: 0..1,
                body: 1..2,
                witness_set: 2..3,
                rest: 3..5
            })
        );
    }
}
