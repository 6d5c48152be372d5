//! A backend service's view of authgate: sign up (or log in), create an API key,
//! and call `/protected/service-only` with it, printing each step.
//!
//! Run with the service up: `cargo run --example service_client`
//! (`AUTHGATE_URL` overrides `http://localhost:3000`).

use serde_json::{json, Value};

const EMAIL: &str = "service-owner@example.com";
const PASSWORD: &str = "a long service password";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("AUTHGATE_URL").unwrap_or_else(|_| "http://localhost:3000".into());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();

    let credentials = json!({ "email": EMAIL, "password": PASSWORD });
    let (status, body) = post(&agent, &format!("{base}/auth/signup"), None, &credentials)?;
    let session = if status == 201 {
        println!("1. signed up as {EMAIL}");
        body
    } else {
        let (status, body) = post(&agent, &format!("{base}/auth/login"), None, &credentials)?;
        if status != 200 {
            return Err(format!("login failed ({status}): {body}").into());
        }
        println!("1. {EMAIL} exists; logged in");
        body
    };
    let access = session["accessToken"].as_str().ok_or("no accessToken")?;

    let name = format!("example-{}", chrono::Utc::now().timestamp());
    let (status, created) = post(
        &agent,
        &format!("{base}/keys/create"),
        Some(access),
        &json!({ "name": name }),
    )?;
    if status != 201 {
        return Err(format!("key creation failed ({status}): {created}").into());
    }
    let key = created["key"].as_str().ok_or("no key")?;
    println!(
        "2. created API key {name:?}: {}… (shown once; store it)",
        &key[..11]
    );

    let mut response = agent
        .get(&format!("{base}/protected/service-only"))
        .header("x-api-key", key)
        .call()?;
    let status = response.status().as_u16();
    let body: Value = response.body_mut().read_json()?;
    println!("3. GET /protected/service-only -> {status}\n{body:#}");
    if status == 200 {
        Ok(())
    } else {
        Err("the key was refused".into())
    }
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    bearer: Option<&str>,
    body: &Value,
) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    let mut request = agent.post(url);
    if let Some(token) = bearer {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request.send_json(body)?;
    let status = response.status().as_u16();
    Ok((status, response.body_mut().read_json()?))
}
