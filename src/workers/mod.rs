pub mod last_used;
