mod auth;
mod docs;
mod keys;
mod protected;
mod support;
