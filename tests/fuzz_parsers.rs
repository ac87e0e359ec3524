//! Every parser of outside input under arbitrary bytes, in CI: the harnesses the cargo-fuzz
//! targets run (`mm_actors::fuzz_harness`, `fuzz/`), fed here by proptest with random bytes and
//! with random mutations of real samples (`fuzz/seeds/`). Each harness checks that nothing
//! panics and that what a parser accepts keeps the service's invariants (positive, bounded,
//! uncrossed prices; signed transactions that verify with their body unchanged).

mod common;

use mm_actors::fuzz_harness as h;
use proptest::prelude::*;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = common::repo_path(&format!("fuzz/seeds/{target}"));
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.expect("entry").path()).expect("seed"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds for {target}");
    out
}

/// A seed of `target` with up to 8 random edits (replace, insert, delete a byte).
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let all = seeds(target);
    (
        0..all.len(),
        proptest::collection::vec((any::<u8>(), any::<u16>(), 0u8..3), 0..8),
    )
        .prop_map(move |(i, edits)| {
            let mut b = all[i].clone();
            for (byte, at, op) in edits {
                let at = usize::from(at) % (b.len() + 1);
                match op {
                    0 if at < b.len() => b[at] = byte,
                    1 => b.insert(at, byte),
                    _ if at < b.len() => {
                        b.remove(at);
                    }
                    _ => {}
                }
            }
            b
        })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..512)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn prop_binance_frames_never_panic(b in bytes(), m in mutated("binance_frames")) {
        h::binance_frames(&b);
        h::binance_frames(&m);
    }

    #[test]
    fn prop_deltadefi_rest_bodies_never_panic(b in bytes(), m in mutated("deltadefi_rest")) {
        h::deltadefi_rest(&b);
        h::deltadefi_rest(&m);
    }

    #[test]
    fn prop_deltadefi_stream_messages_never_panic(b in bytes(), m in mutated("deltadefi_stream")) {
        h::deltadefi_stream(&b);
        h::deltadefi_stream(&m);
    }

    #[test]
    fn prop_cbor_transactions_never_panic(b in bytes(), m in mutated("cbor_transaction")) {
        h::cbor_transaction(&b);
        h::cbor_transaction(&m);
    }

    #[test]
    fn prop_configs_never_panic(b in bytes(), m in mutated("config")) {
        for data in [&b, &m] {
            if let Ok(cfg) = deltadefi_mm::config::parse(&String::from_utf8_lossy(data)) {
                let _ = cfg.validate();
            }
        }
    }
}

proptest! {
    // Each well-formed record costs a 100k-round PBKDF2: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn prop_operation_key_records_never_panic(b in bytes(), m in mutated("operation_key")) {
        h::operation_key(&b);
        h::operation_key(&m);
    }
}
