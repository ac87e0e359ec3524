//! DeltaDeFi: the wire shapes of its REST API and account stream ([`wire`]), the REST
//! transport actor ([`rest`]) and the account-stream actor ([`stream`]).
pub mod rest;
pub mod stream;
pub mod wire;
