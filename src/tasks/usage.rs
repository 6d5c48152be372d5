//! `usage:prune days:…`: retention of the usage counters. Safe to run from cron
//! and while instances flush (they only add to recent hours).

use loco_rs::{
    app::AppContext,
    task::{Task, TaskInfo, Vars},
    Result,
};

use crate::models::key_usage;

pub struct PruneUsage;

#[async_trait::async_trait]
impl Task for PruneUsage {
    fn task(&self) -> TaskInfo {
        TaskInfo {
            name: "usage:prune".to_string(),
            detail: "Delete usage counters of hours more than N days ago: `days:400`".to_string(),
        }
    }

    async fn run(&self, ctx: &AppContext, vars: &Vars) -> Result<()> {
        let days = super::days_arg(vars)?;
        let deleted = key_usage::prune(&ctx.db, days).await?;
        println!("{deleted} hourly usage rows deleted");
        Ok(())
    }
}
