//! Request signing, sans IO: pure functions of the request parts and the key.
//!
//! Nothing under `sign/` performs IO or reads the clock: the transport sets
//! `x-ms-date` before calling in, and re-signs on every attempt.

pub mod shared_key;

pub use shared_key::{
    authorization, canonicalized_headers, canonicalized_resource, string_to_sign,
};
