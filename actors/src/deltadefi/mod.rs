//! DeltaDeFi: the wire shapes of its REST API and account stream ([`wire`]).
pub mod wire;
