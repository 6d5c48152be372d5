mod auth;
mod docs;
mod keys;
mod limits;
mod protected;
mod support;
