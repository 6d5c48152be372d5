//! A service that authgate does not host (say one written in Python or Go) asking
//! authgate about a key its own client presented: `POST /keys/verify`, then
//! serve or refuse on the answer. No credential of the service is needed.
//!
//! Run with the service up: `cargo run --example verify_client -- sk_…`
//! (or the key in `AUTHGATE_KEY`; `AUTHGATE_URL` overrides `http://localhost:3000`).
//! Exits 0 when the key is valid, 1 when it is not, 2 on any other problem.

use serde_json::{json, Value};

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let base = std::env::var("AUTHGATE_URL").unwrap_or_else(|_| "http://localhost:3000".into());
    let key = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("AUTHGATE_KEY").ok())
        .ok_or("usage: verify_client <sk_…> (or AUTHGATE_KEY=sk_…)")?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();

    let mut response = agent
        .post(&format!("{base}/keys/verify"))
        .send_json(json!({ "key": key }))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.body_mut().read_json()?;
    if status == 429 {
        // Too many unknown keys from this service's address: back off.
        let wait = retry_after.as_deref().unwrap_or("?");
        return Err(format!("429 from authgate; retry after {wait} s").into());
    }
    if status != 200 {
        return Err(format!("POST /keys/verify -> {status}: {body}").into());
    }

    // Never print the key itself: only what authgate says about it.
    let valid = body["valid"].as_bool().unwrap_or(false);
    let code = body["code"].as_str().unwrap_or("?");
    println!("valid:     {valid}");
    println!("code:      {code}");
    if code != "NOT_FOUND" {
        println!("keyId:     {}", text(&body["keyId"]));
        println!("userId:    {}", text(&body["userId"]));
        println!("name:      {}", text(&body["name"]));
        println!("expiresAt: {}", text(&body["expiresAt"]));
        match body["rateLimit"].as_object() {
            Some(limit) => println!(
                "rateLimit: {} of {} left, window resets in {} s",
                limit["remaining"], limit["limit"], limit["reset"]
            ),
            None => println!("rateLimit: none"),
        }
    }
    // A service serves the request only when `valid` is true; `code` says why
    // not (RATE_LIMITED is a 429 to its own client, anything else a 401).
    Ok(valid)
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| "none".to_owned(), str::to_owned)
}
