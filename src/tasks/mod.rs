//! Admin commands: `cargo loco task <name> key:value…`.

pub mod events;
pub mod keys;
pub mod usage;
pub mod users;

use loco_rs::{task::Vars, Error, Result};

/// The `days:N` argument of the prune tasks.
fn days_arg(vars: &Vars) -> Result<u32> {
    vars.cli_arg("days")?
        .parse()
        .map_err(|_| Error::Message("days must be a whole number".into()))
}
