//! `keys:revoke id:…` and `keys:prune days:…`.

use loco_rs::{
    app::AppContext,
    task::{Task, TaskInfo, Vars},
    Error, Result,
};
use uuid::Uuid;

use crate::{
    auth::{api_key::KeyHash, cache::Revocation, revocations, AuthState},
    models::api_keys,
};

pub struct RevokeKey;

#[async_trait::async_trait]
impl Task for RevokeKey {
    fn task(&self) -> TaskInfo {
        TaskInfo {
            name: "keys:revoke".to_string(),
            detail: "Revoke any user's API key: `id:<uuid>`".to_string(),
        }
    }

    async fn run(&self, ctx: &AppContext, vars: &Vars) -> Result<()> {
        let id: Uuid = vars
            .cli_arg("id")?
            .parse()
            .map_err(|_| Error::Message("id must be a UUID".into()))?;
        let key = api_keys::revoke(&ctx.db, id, None)
            .await
            .map_err(|err| Error::Message(err.to_string()))?;
        let state = AuthState::of(ctx).map_err(|err| Error::Message(err.to_string()))?;
        let hash = KeyHash::from_hex(&key.key_hash)
            .ok_or_else(|| Error::Message("stored key hash is not hex".into()))?;
        revocations::publish(ctx, &state, Revocation::Key(hash)).await?;
        println!("API key {id} ({}) revoked", key.prefix);
        Ok(())
    }
}

pub struct PruneKeys;

#[async_trait::async_trait]
impl Task for PruneKeys {
    fn task(&self) -> TaskInfo {
        TaskInfo {
            name: "keys:prune".to_string(),
            detail: "Delete keys revoked or expired more than N days ago: `days:30`".to_string(),
        }
    }

    async fn run(&self, ctx: &AppContext, vars: &Vars) -> Result<()> {
        let days: u32 = vars
            .cli_arg("days")?
            .parse()
            .map_err(|_| Error::Message("days must be a whole number".into()))?;
        let deleted = api_keys::prune(&ctx.db, days).await?;
        println!("{deleted} API keys deleted");
        Ok(())
    }
}
