//! `user:deactivate email:…` and `user:activate email:…`. Deactivation makes the
//! user's tokens and keys fail at once, on every instance.

use loco_rs::{
    app::AppContext,
    task::{Task, TaskInfo, Vars},
    Error, Result,
};

use crate::{
    auth::{cache::Revocation, revocations, AuthState},
    models::users::{self, Email},
};

pub struct SetUserActive {
    pub active: bool,
}

#[async_trait::async_trait]
impl Task for SetUserActive {
    fn task(&self) -> TaskInfo {
        let (name, detail) = if self.active {
            (
                "user:activate",
                "Reactivate a user: `email:ada@example.com`",
            )
        } else {
            (
                "user:deactivate",
                "Deactivate a user; their tokens and keys stop working: `email:ada@example.com`",
            )
        };
        TaskInfo {
            name: name.to_string(),
            detail: detail.to_string(),
        }
    }

    async fn run(&self, ctx: &AppContext, vars: &Vars) -> Result<()> {
        let email = Email::parse(vars.cli_arg("email")?).map_err(Error::Message)?;
        let user = users::set_active(&ctx.db, &email, self.active)
            .await?
            .ok_or_else(|| Error::Message(format!("no user with email {}", email.as_str())))?;
        let state = AuthState::of(ctx).map_err(|err| Error::Message(err.to_string()))?;
        revocations::publish(ctx, &state, Revocation::User(user.id)).await?;
        println!(
            "user {} is now {}",
            user.email,
            if self.active { "active" } else { "inactive" }
        );
        Ok(())
    }
}
