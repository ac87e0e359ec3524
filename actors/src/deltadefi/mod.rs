//! DeltaDeFi: the wire shapes of its REST API and account stream ([`wire`]) and the REST
//! transport actor ([`rest`]).
pub mod rest;
pub mod wire;
