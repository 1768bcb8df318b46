//! Penpot user profiles, created, edited and deleted through the backend's PREPL (the admin
//! interface manage.py uses), reached in a Ready pod through the port-forward API. Two front
//! ends share it: the `profile` command and the `PenpotProfile` controller.

mod commands;
pub mod controller;
mod deactivations;
mod pod;
pub mod prepl;

pub use commands::{Outcome, create_profile, delete_profile, update_profile};
pub use deactivations::Deactivations;
pub use pod::{ready_pod, ready_pod_of};
pub use prepl::{Changes, PreplError};

/// 16 random URL-safe characters, like the charm's `token_urlsafe(10)` but longer.
pub fn generate_password() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
