pub mod _entities;
pub mod api_keys;
pub mod sessions;
pub mod users;
