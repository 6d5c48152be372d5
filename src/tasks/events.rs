//! `events:prune days:…`: retention of the audit log. Deleting an event
//! deletes its webhook deliveries with it. Safe to run from cron while
//! instances write new events.

use loco_rs::{
    app::AppContext,
    task::{Task, TaskInfo, Vars},
    Result,
};

use crate::models::events;

pub struct PruneEvents;

#[async_trait::async_trait]
impl Task for PruneEvents {
    fn task(&self) -> TaskInfo {
        TaskInfo {
            name: "events:prune".to_string(),
            detail: "Delete events (and their webhook deliveries) more than N days old: `days:90`"
                .to_string(),
        }
    }

    async fn run(&self, ctx: &AppContext, vars: &Vars) -> Result<()> {
        let days = super::days_arg(vars)?;
        let deleted = events::prune(&ctx.db, days).await?;
        println!("{deleted} events deleted");
        Ok(())
    }
}
