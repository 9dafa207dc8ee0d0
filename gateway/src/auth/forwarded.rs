//! The client's address behind trusted proxies (`X-Forwarded-For`, or RFC 7239
//! `Forwarded`). Each proxy appends the address it saw, so only the right-hand end of the
//! list is trustworthy: it is read right to left, trusted proxies are skipped, and the
//! first other entry is the client. An entry that does not parse (`unknown`, `_hidden`, a
//! mangled one) stops the walk and the client is unknown: skipping it would believe
//! whatever a client wrote to its left.

use std::net::IpAddr;

use axum::http::HeaderMap;

use super::cidr::Cidr;

/// Which header the trusted proxies set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1` (other parameters are ignored).
    Forwarded,
}

impl ForwardedHeader {
    fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The proxies whose forwarding header is believed, and which header that is.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Proxies in `blocks`, setting `header`.
    pub fn new(blocks: Vec<Cidr>, header: ForwardedHeader) -> Self {
        Self { blocks, header }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|block| block.contains(ip))
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the
    /// nearest forwarded entry that is not one; `None` when it cannot be known (no peer,
    /// or an entry that does not parse).
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.trusted(peer) {
            return Some(peer);
        }
        let mut entries: Vec<&str> = Vec::new();
        for value in headers.get_all(self.header.name()) {
            // A value that is not text at all cannot be read: unknown.
            let text = value.to_str().ok()?;
            entries.extend(text.split(','));
        }
        let mut nearest = peer;
        for entry in entries.iter().rev() {
            let ip = match self.header {
                ForwardedHeader::XForwardedFor => address(entry),
                ForwardedHeader::Forwarded => forwarded_for(entry),
            }?
            .to_canonical();
            if !self.trusted(ip) {
                return Some(ip);
            }
            nearest = ip;
        }
        // Every hop is a trusted proxy: the leftmost one is the client.
        Some(nearest)
    }
}

/// One address as proxies write it: `198.51.100.7`, `198.51.100.7:51234`, `2001:db8::7`,
/// `[2001:db8::7]` or `[2001:db8::7]:443`.
fn address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim().trim_matches('"');
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || port(after.strip_prefix(':')?)) {
            return None;
        }
        return inside.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (host, tail) = entry.rsplit_once(':')?;
    if !port(tail) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The `for=` address of one RFC 7239 element (`for=192.0.2.60;proto=http`,
/// `for="[2001:db8:cafe::17]:4711"`); `None` when it has none or it is obfuscated.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            address(value)
        } else {
            None
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(name, HeaderValue::from_static(value));
        }
        headers
    }

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let proxies = TrustedProxies::new(
            vec!["10.0.0.0/8".parse().unwrap()],
            ForwardedHeader::XForwardedFor,
        );
        let headers = with("x-forwarded-for", &["198.51.100.1, 203.0.113.9, 10.1.2.3"]);
        // From the proxy: the nearest untrusted hop (a client can prepend anything).
        assert_eq!(
            proxies.client_ip(&headers, ip("10.0.0.1")),
            ip("203.0.113.9")
        );
        // From anyone else: the header is ignored.
        assert_eq!(
            proxies.client_ip(&headers, ip("192.0.2.5")),
            ip("192.0.2.5")
        );
        assert_eq!(proxies.client_ip(&headers, None), None);
        assert_eq!(
            proxies.client_ip(&HeaderMap::new(), ip("10.0.0.1")),
            ip("10.0.0.1")
        );
        // Every hop trusted: the leftmost.
        let inside = with("x-forwarded-for", &["10.9.9.9, 10.1.2.3"]);
        assert_eq!(proxies.client_ip(&inside, ip("10.0.0.1")), ip("10.9.9.9"));
    }

    #[test]
    fn ports_and_brackets_are_stripped_and_an_unreadable_entry_means_unknown() {
        let proxies = TrustedProxies::new(
            vec!["10.0.0.0/8".parse().unwrap()],
            ForwardedHeader::XForwardedFor,
        );
        let peer = ip("10.0.0.1");
        for (real, expected) in [
            ("198.51.100.7:51234", "198.51.100.7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("2001:db8::7", "2001:db8::7"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
        ] {
            let value = HeaderValue::try_from(format!("203.0.113.5, {real}")).unwrap();
            let mut headers = HeaderMap::new();
            headers.insert("x-forwarded-for", value);
            assert_eq!(proxies.client_ip(&headers, peer), ip(expected), "{real}");
        }
        for real in [
            "unknown",
            "_hidden",
            "198.51.100.7:port",
            "[2001:db8::7",
            "",
            "1.2.3.4:123456",
        ] {
            let value = HeaderValue::try_from(format!("203.0.113.5, {real}")).unwrap();
            let mut headers = HeaderMap::new();
            headers.insert("x-forwarded-for", value);
            assert_eq!(proxies.client_ip(&headers, peer), None, "{real:?}");
        }
        // Two header lines are one list, in order.
        let lines = with("x-forwarded-for", &["203.0.113.5", "198.51.100.8"]);
        assert_eq!(proxies.client_ip(&lines, peer), ip("198.51.100.8"));
    }

    #[test]
    fn rfc_7239_forwarded_is_read_the_same_way() {
        let proxies = TrustedProxies::new(
            vec!["10.0.0.0/8".parse().unwrap()],
            ForwardedHeader::Forwarded,
        );
        let peer = ip("10.0.0.1");
        let headers = with(
            "forwarded",
            &[
                r#"for=203.0.113.5, for="[2001:db8:cafe::17]:4711";proto=https, for=10.2.3.4;by=10.0.0.1"#,
            ],
        );
        assert_eq!(proxies.client_ip(&headers, peer), ip("2001:db8:cafe::17"));
        let hidden = with("forwarded", &["for=203.0.113.5, for=_hidden"]);
        assert_eq!(proxies.client_ip(&hidden, peer), None);
        let no_for = with("forwarded", &["for=203.0.113.5, proto=https"]);
        assert_eq!(proxies.client_ip(&no_for, peer), None);
        // X-Forwarded-For is not read when the proxies set Forwarded.
        let other = with("x-forwarded-for", &["203.0.113.5"]);
        assert_eq!(proxies.client_ip(&other, peer), ip("10.0.0.1"));
    }
}
