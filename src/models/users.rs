//! People who sign in with email and password, and the input types that can only
//! hold what a user row may contain.

use chrono::Utc;
use sea_orm::{entity::prelude::*, ActiveValue::Set, QueryFilter, QuerySelect, TransactionTrait};
use serde_json::json;
use uuid::Uuid;
use validator::ValidateEmail;

pub use super::_entities::users::{self, ActiveModel, Entity, Model};

impl ActiveModelBehavior for ActiveModel {}
use super::{
    events::{self, EventType, NewEvent},
    on_unique_violation, ModelError,
};

const MAX_EMAIL_LEN: usize = 254;
pub const MIN_PASSWORD_BYTES: usize = 8;
/// bcrypt reads 72 bytes; longer passwords would be silently truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;
const MAX_NAME_CHARS: usize = 100;

/// An email address, trimmed and lowercased: two spellings of one address are one `Email`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// # Errors
    /// A message for the user when the text is not an email address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let email = text.trim().to_lowercase();
        if email.len() > MAX_EMAIL_LEN
            || email.chars().any(char::is_control)
            || !email.validate_email()
        {
            return Err("email must be an email".into());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a new password's length in bytes: 8 to 72, so bcrypt never truncates it.
///
/// # Errors
/// A message for the user naming the limit.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.len() < MIN_PASSWORD_BYTES {
        Err(format!(
            "password must be at least {MIN_PASSWORD_BYTES} characters"
        ))
    } else if password.len() > MAX_PASSWORD_BYTES {
        Err(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        ))
    } else {
        Ok(())
    }
}

/// A display name: trimmed, 1 to 100 characters, no control characters.
///
/// # Errors
/// A message for the user naming the rule (`field` is `name`, or the key's `name`).
pub fn parse_name(field: &str, text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        Err(format!("{field} must not be empty"))
    } else if name.chars().count() > MAX_NAME_CHARS {
        Err(format!(
            "{field} must be at most {MAX_NAME_CHARS} characters"
        ))
    } else if name.chars().any(char::is_control) {
        Err(format!("{field} must not contain control characters"))
    } else {
        Ok(name.to_string())
    }
}

/// # Errors
/// Database errors.
pub async fn find_by_email(db: &DatabaseConnection, email: &Email) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .one(db)
        .await
}

/// # Errors
/// Database errors.
pub async fn find_by_id(db: &DatabaseConnection, id: Uuid) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id).one(db).await
}

/// Inserts a user whose password is already hashed.
///
/// # Errors
/// `Conflict` when the email is registered already.
pub async fn create<C: ConnectionTrait>(
    db: &C,
    email: &Email,
    password_hash: String,
    name: Option<String>,
) -> Result<Model, ModelError> {
    let now = Utc::now().fixed_offset();
    ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set(email.as_str().to_string()),
        password: Set(password_hash),
        name: Set(name),
        is_active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(|err| on_unique_violation(err, "Email already registered"))
}

/// Activates or deactivates the user with `email`, recording `user.activated`
/// or `user.deactivated` when that changes anything; `None` when there is no
/// such user.
///
/// # Errors
/// Database errors.
pub async fn set_active(
    db: &DatabaseConnection,
    email: &Email,
    active: bool,
) -> Result<Option<Model>, DbErr> {
    let txn = db.begin().await?;
    let Some(user) = Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .lock_exclusive()
        .one(&txn)
        .await?
    else {
        return Ok(None);
    };
    if user.is_active == active {
        return Ok(Some(user));
    }
    let mut user: ActiveModel = user.into();
    user.is_active = Set(active);
    user.updated_at = Set(Utc::now().fixed_offset());
    let user = user.update(&txn).await?;
    let kind = if active {
        EventType::UserActivated
    } else {
        EventType::UserDeactivated
    };
    events::record(
        &txn,
        NewEvent::now(user.id, kind, json!({ "userId": user.id })),
    )
    .await?;
    txn.commit().await?;
    Ok(Some(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn bad_emails_are_refused() {
        for text in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@exa mple.com",
            "ada\0@example.com",
        ] {
            assert!(Email::parse(text).is_err(), "{text:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn password_length_is_8_to_72_bytes() {
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("12345678").is_ok());
        assert!(check_new_password(&"a".repeat(72)).is_ok());
        assert!(check_new_password(&"a".repeat(73)).is_err());
        // 25 three-byte characters: 25 characters but 75 bytes.
        assert!(check_new_password(&"€".repeat(25)).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("name", "  Ada ").unwrap(), "Ada");
        assert!(parse_name("name", "   ").is_err());
        assert!(parse_name("name", &"x".repeat(101)).is_err());
        assert!(parse_name("name", "a\u{7}b").is_err());
    }
}
