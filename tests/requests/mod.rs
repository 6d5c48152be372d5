mod auth;
mod docs;
mod keys;
mod limits;
mod outage;
mod protected;
mod support;
mod usage;
