//! Admin commands: `cargo loco task <name> key:value…`.

pub mod events;
pub mod keys;
pub mod usage;
pub mod users;
