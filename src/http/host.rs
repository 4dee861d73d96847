//! The Host check against DNS rebinding.
//!
//! A web page on `evil.example` can point that name at 127.0.0.1 once it is loaded, and then its
//! script reaches this server as "same origin", with `Host: evil.example`. So a request is served
//! only when its `Host` names a loopback address (127.0.0.0/8, `[::1]`), `localhost`, the address
//! the server is bound to, or a host given with `--allow-host`; anything else gets 421 before any
//! route runs. A server bound to every address (`0.0.0.0`, `[::]`) serves any IP literal: an
//! address is what its clients dial, and rebinding needs a name.
//!
//! The port in `Host` is ignored (it must be digits, if present): a rebinding page may use the
//! server's own port, so checking it would stop nothing, and a proxy or a port forward may
//! legitimately show another.
//!
//! The check first compares the bytes against the few values clients usually send, prepared at
//! start (`127.0.0.1:PORT`, `localhost:PORT`, ...); only another value is parsed, without
//! allocating. Nothing per request but a few comparisons.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Which `Host` values this server answers to.
#[derive(Debug)]
pub(crate) struct Hosts {
    /// The values clients send most, compared byte for byte before anything is parsed:
    /// `127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT` and the bound address, with its port.
    usual: Vec<Box<[u8]>>,
    bound: IpAddr,
    /// Host names, lowercase and without a trailing dot: `localhost` and the allowed ones.
    names: Vec<Box<[u8]>>,
}

impl Hosts {
    /// The hosts of a server bound to `bound`, plus `allowed` names.
    pub(crate) fn new(bound: SocketAddr, allowed: &[String]) -> Self {
        let mut names: Vec<Box<[u8]>> = vec![b"localhost".as_slice().into()];
        for name in allowed {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            if !name.is_empty() {
                names.push(name.into_bytes().into_boxed_slice());
            }
        }
        let port = bound.port();
        let usual = [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            bound.to_string(),
        ]
        .into_iter()
        .map(|host| host.into_bytes().into_boxed_slice())
        .collect();
        Self {
            usual,
            bound: bound.ip(),
            names,
        }
    }

    /// Whether a `Host` header's value names this server.
    pub(crate) fn allows(&self, host: &[u8]) -> bool {
        if self.usual.iter().any(|usual| **usual == *host) {
            return true;
        }
        let Some(name) = without_port(host) else {
            return false;
        };
        if let Some(inner) = name.strip_prefix(b"[").and_then(|n| n.strip_suffix(b"]")) {
            return std::str::from_utf8(inner)
                .ok()
                .and_then(|text| text.parse::<Ipv6Addr>().ok())
                .is_some_and(|ip| self.allows_ip(IpAddr::V6(ip)));
        }
        if name.first().is_some_and(u8::is_ascii_digit) {
            if let Some(ip) = std::str::from_utf8(name)
                .ok()
                .and_then(|text| text.parse::<Ipv4Addr>().ok())
            {
                return self.allows_ip(IpAddr::V4(ip));
            }
        }
        let name = name.strip_suffix(b".").unwrap_or(name);
        self.names
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_loopback() || ip == self.bound.to_canonical() || self.bound.is_unspecified()
    }
}

/// The host part of a `Host` value: without its `:port`, which must be digits if present. `None`
/// when the port is not a number.
fn without_port(host: &[u8]) -> Option<&[u8]> {
    let (name, port) = if host.first() == Some(&b'[') {
        let end = host.iter().position(|&b| b == b']')?;
        let (name, rest) = host.split_at(end + 1);
        // Anything after `]` but a `:port` is kept as a "port" that then fails the digit check.
        let port = rest
            .strip_prefix(b":")
            .or((!rest.is_empty()).then_some(rest));
        (name, port)
    } else {
        match host.iter().rposition(|&b| b == b':') {
            Some(colon) => (&host[..colon], Some(&host[colon + 1..])),
            None => (host, None),
        }
    };
    match port {
        Some(port) if port.is_empty() || port.len() > 5 || !port.iter().all(u8::is_ascii_digit) => {
            None
        }
        _ => (!name.is_empty()).then_some(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_the_bound_address_and_allowed_hosts_pass_and_nothing_else() {
        let hosts = Hosts::new(
            "192.168.1.5:3000".parse().unwrap(),
            &["Bank.Internal".into()],
        );
        for good in [
            "127.0.0.1",
            "127.9.9.9:80",
            "localhost",
            "LOCALHOST.:1",
            "[::1]",
            "[::1]:3000",
            "[::ffff:127.0.0.1]",
            "192.168.1.5:3000",
            "bank.internal",
            "bank.internal:8443",
        ] {
            assert!(hosts.allows(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            ":80",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "192.168.1.6",
            "[::2]",
            "[::1]x",
            "[::1",
            "localhost:",
            "localhost:http",
            "localhost:123456",
            "::1",
        ] {
            assert!(!hosts.allows(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn a_server_bound_to_every_address_serves_any_ip_literal_but_no_other_name() {
        let hosts = Hosts::new("0.0.0.0:3000".parse().unwrap(), &[]);
        assert!(hosts.allows(b"10.1.2.3:3000"));
        assert!(hosts.allows(b"[fe80::1]"));
        assert!(!hosts.allows(b"evil.example"));
    }
}
