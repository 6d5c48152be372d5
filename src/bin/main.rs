use authgate::app::App;
use loco_rs::cli;
use migration::Migrator;

#[tokio::main]
async fn main() -> loco_rs::Result<()> {
    // Like the old service, read a `.env` file from the working directory first;
    // variables already set in the environment win.
    dotenvy::dotenv().ok();
    cli::main::<App, Migrator>().await
}
