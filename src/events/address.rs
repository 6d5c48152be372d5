//! Where webhooks may be sent. In production (any environment but development
//! and test) a URL must be https and must not reach this host or its private
//! networks: the check runs on the address each connection is about to use,
//! after DNS (a resolver of our own refuses those addresses), so a name that
//! resolves to a public address when the endpoint is created and to a private
//! one later (DNS rebinding) is refused too. `WEBHOOK_ALLOW_PRIVATE=true` lifts
//! the address check; development and test allow plain http and loopback, so
//! tests can run a local receiver.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::LazyLock,
};

use ipnet::{IpNet, Ipv6Net};
use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    Url,
};

/// The longest URL an endpoint may have.
pub const MAX_URL_CHARS: usize = 2048;

/// What the delivery worker may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Refuse `http://`.
    pub https_only: bool,
    /// Allow loopback, private, link-local and the other non-public addresses.
    pub allow_private: bool,
}

impl AddressPolicy {
    /// Whether a connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip)
    }

    /// Parses an endpoint URL, refusing what can never be delivered to: a URL
    /// that is too long, not http(s) (or not https, in production), with
    /// credentials in it, or naming an address (or `localhost`) it may not reach.
    ///
    /// # Errors
    /// A message for the user naming the problem.
    pub fn check_url(&self, text: &str) -> Result<Url, String> {
        if text.chars().count() > MAX_URL_CHARS {
            return Err(format!("url must be at most {MAX_URL_CHARS} characters"));
        }
        let url = Url::parse(text.trim()).map_err(|_| "url must be an absolute URL".to_string())?;
        match url.scheme() {
            "https" => {}
            "http" if !self.https_only => {}
            "http" => return Err("url must use https".into()),
            _ => return Err("url must be an http or https URL".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("url must not contain credentials".into());
        }
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| "url must name a host".to_string())?;
        // An IPv6 literal comes in brackets.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let private = match literal.parse::<IpAddr>() {
            Ok(ip) => !self.allows(ip),
            Err(_) => {
                let name = host.trim_end_matches('.').to_ascii_lowercase();
                !self.allow_private && (name == "localhost" || name.ends_with(".localhost"))
            }
        };
        if private {
            return Err("url must not point to a loopback, private or link-local address".into());
        }
        Ok(url)
    }
}

/// Ranges that are not the public internet: this host, private networks,
/// link-local, shared (CGNAT), multicast, documentation and reserved blocks.
static NON_PUBLIC: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    ]
    .iter()
    .map(|range| range.parse().expect("a CIDR range"))
    .collect()
});

/// Whether `ip` is a public internet address. An IPv6 address that carries an
/// IPv4 one (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) is judged by the IPv4 address it reaches.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => !NON_PUBLIC
                .iter()
                .any(|range| range.contains(&IpAddr::V6(v6))),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !NON_PUBLIC
        .iter()
        .any(|range| range.contains(&IpAddr::V4(ip)))
}

fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let octets = ip.octets();
    let tail = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    let within = |range: &str| {
        range
            .parse::<Ipv6Net>()
            .is_ok_and(|net: Ipv6Net| net.contains(&ip))
    };
    if within("::/96") && !ip.is_unspecified() && !ip.is_loopback() {
        // IPv4-compatible (deprecated, but still routed by some stacks).
        return Some(tail);
    }
    if within("64:ff9b::/96") {
        return Some(tail);
    }
    if within("2002::/16") {
        return Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    None
}

/// The system resolver, keeping only the addresses `policy` allows: a name
/// with none left fails to resolve, and the connection is never made.
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver {
    pub policy: AddressPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|address| policy.allows(address.ip()))
                .collect();
            if allowed.is_empty() {
                let problem = if found.is_empty() {
                    format!("{host} has no address")
                } else {
                    format!("{host} resolves only to loopback, private or link-local addresses")
                };
                return Err(problem.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn public_addresses_are_public() {
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip(text)), "{text} refused");
        }
    }

    #[test]
    fn loopback_private_link_local_and_the_rest_are_not() {
        for text in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "192.0.2.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(text)), "{text} allowed");
        }
    }

    #[test]
    fn ipv6_forms_of_private_ipv4_addresses_are_not_public() {
        for text in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:192.168.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
        ] {
            assert!(!is_public(ip(text)), "{text} allowed");
        }
    }

    const PRODUCTION: AddressPolicy = AddressPolicy {
        https_only: true,
        allow_private: false,
    };
    const DEVELOPMENT: AddressPolicy = AddressPolicy {
        https_only: false,
        allow_private: true,
    };

    #[test]
    fn production_urls_are_https_to_public_hosts_without_credentials() {
        assert!(PRODUCTION
            .check_url("https://hooks.example.com/authgate")
            .is_ok());
        assert!(PRODUCTION.check_url("https://93.184.216.34/in").is_ok());
        let refused = [
            ("http://hooks.example.com/", "url must use https"),
            (
                "ftp://hooks.example.com/",
                "url must be an http or https URL",
            ),
            ("hooks.example.com/in", "url must be an absolute URL"),
            (
                "https://user:pass@hooks.example.com/",
                "url must not contain credentials",
            ),
            (
                "https://token@hooks.example.com/",
                "url must not contain credentials",
            ),
            (
                "https://127.0.0.1/",
                "url must not point to a loopback, private or link-local address",
            ),
            (
                "https://[::1]/",
                "url must not point to a loopback, private or link-local address",
            ),
            (
                "https://[::ffff:10.0.0.1]/",
                "url must not point to a loopback, private or link-local address",
            ),
            (
                "https://localhost:8443/",
                "url must not point to a loopback, private or link-local address",
            ),
            (
                "https://api.localhost./",
                "url must not point to a loopback, private or link-local address",
            ),
        ];
        for (url, problem) in refused {
            assert_eq!(PRODUCTION.check_url(url).unwrap_err(), problem, "{url}");
        }
        let long = format!("https://hooks.example.com/{}", "a".repeat(2048));
        assert!(PRODUCTION.check_url(&long).unwrap_err().contains("2048"));
    }

    #[test]
    fn development_allows_http_to_loopback_but_never_credentials() {
        assert!(DEVELOPMENT.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(DEVELOPMENT.check_url("http://localhost/hook").is_ok());
        assert!(DEVELOPMENT.check_url("http://a:b@127.0.0.1/").is_err());
        assert!(DEVELOPMENT.check_url("file:///etc/passwd").is_err());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_reach_only_private_addresses() {
        let resolver = CheckedResolver { policy: PRODUCTION };
        let err = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost refused");
        assert!(err.to_string().contains("loopback"), "{err}");
        let development = CheckedResolver {
            policy: DEVELOPMENT,
        };
        let addrs: Vec<_> = development
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|address| address.ip().is_loopback()));
    }
}
