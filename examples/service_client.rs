//! A backend service's view of authgate: sign up (or log in), create an API key,
//! call `/protected/service-only` with it, then rotate the key: the new key works
//! at once, the old one until its grace period ends. Prints each step, and the
//! usage the service counted.
//!
//! Run with the service up: `cargo run --example service_client`
//! (`AUTHGATE_URL` overrides `http://localhost:3000`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const EMAIL: &str = "service-owner@example.com";
const PASSWORD: &str = "a long service password";
/// How long the old key keeps working after the rotation.
const GRACE_SECONDS: u64 = 3;

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

    let (status, body) = service_only(&agent, &base, key)?;
    println!("3. GET /protected/service-only -> {status}\n{body:#}");
    if status != 200 {
        return Err("the key was refused".into());
    }

    let key_id = created["id"].as_str().ok_or("no id")?;
    let (status, rotated) = post(
        &agent,
        &format!("{base}/keys/{key_id}/rotate"),
        Some(access),
        &json!({ "gracePeriodSeconds": GRACE_SECONDS }),
    )?;
    if status != 201 {
        return Err(format!("rotation failed ({status}): {rotated}").into());
    }
    let new_key = rotated["key"].as_str().ok_or("no key")?;
    println!(
        "4. rotated: new key {}…; the old one works for {GRACE_SECONDS} s more",
        &new_key[..11]
    );
    println!(
        "   new key -> {}, old key -> {}",
        service_only(&agent, &base, new_key)?.0,
        service_only(&agent, &base, key)?.0
    );

    let started = Instant::now();
    loop {
        let status = service_only(&agent, &base, key)?.0;
        if status == 401 {
            println!(
                "5. old key -> 401 after {:.1} s; new key -> {}",
                started.elapsed().as_secs_f64(),
                service_only(&agent, &base, new_key)?.0
            );
            break;
        }
        if started.elapsed() > Duration::from_secs(GRACE_SECONDS + 10) {
            return Err("the old key outlived its grace period".into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // Uses reach the report within LAST_USED_FLUSH_INTERVAL (5 s in development).
    std::thread::sleep(Duration::from_secs(6));
    let mut response = agent
        .get(&format!("{base}/usage"))
        .header("authorization", &format!("Bearer {access}"))
        .call()?;
    let usage: Value = response.body_mut().read_json()?;
    println!(
        "6. GET /usage (last 24 h): totals {}\n   byKey {}",
        usage["totals"], usage["byKey"]
    );
    Ok(())
}

/// `GET /protected/service-only` with `key`: the status and body.
fn service_only(
    agent: &ureq::Agent,
    base: &str,
    key: &str,
) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    let mut response = agent
        .get(&format!("{base}/protected/service-only"))
        .header("x-api-key", key)
        .call()?;
    let status = response.status().as_u16();
    Ok((status, response.body_mut().read_json()?))
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
