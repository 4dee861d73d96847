//! Where the load goes: one [`Target`] per `--url`, resolved once, before anything is sent.

use anyhow::{bail, Context};
use reqwest::Url;
use std::net::SocketAddr;

/// The replica of request `index`: the requests go round robin over `replicas`.
pub(crate) fn replica_of(index: u64, replicas: usize) -> usize {
    // Below `replicas`, so it fits.
    usize::try_from(index % replicas as u64).unwrap_or(0)
}

/// One replica of the server.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given.
    pub url: Url,
    /// The addresses of the host, tried in order when a connection is opened.
    pub addrs: Vec<SocketAddr>,
    /// The `Host` header: `host[:port]` as the URL spells it.
    pub host: String,
    /// The URL's own path without its trailing slash (`/bank` for `http://h/bank/`), put in front
    /// of every route.
    pub prefix: String,
}

impl Target {
    /// Checks that `url` is an http URL and resolves its host.
    pub fn new(url: &Url) -> anyhow::Result<Self> {
        if url.scheme() != "http" {
            bail!("`{url}`: only http:// URLs are supported");
        }
        let Some(host) = url.host_str() else {
            bail!("`{url}` has no host");
        };
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let addrs = url
            .socket_addrs(|| Some(80))
            .with_context(|| format!("cannot resolve the host of {url}"))?;
        if addrs.is_empty() {
            bail!("the host of {url} has no address");
        }
        Ok(Target {
            url: url.clone(),
            addrs,
            host,
            prefix: url.path().trim_end_matches('/').to_string(),
        })
    }

    /// What an HTTP/1.1 request line names for `path`: the prefix, then the path.
    pub fn origin_form(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// The absolute URL of `path`, for the reads around a run.
    pub fn url_of(&self, path: &str) -> anyhow::Result<Url> {
        let mut url = self.url.clone();
        url.set_query(None);
        let origin = self.origin_form(path);
        let (path, query) = match origin.split_once('?') {
            Some((path, query)) => (path.to_string(), Some(query.to_string())),
            None => (origin, None),
        };
        url.set_path(&path);
        url.set_query(query.as_deref());
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_keep_the_path_prefix_of_the_url() {
        let plain = Target::new(&"http://127.0.0.1:3000".parse().unwrap()).unwrap();
        assert_eq!(plain.origin_form("/deposit"), "/deposit");
        assert_eq!(plain.host, "127.0.0.1:3000");
        let prefixed = Target::new(&"http://127.0.0.1:3000/bank/".parse().unwrap()).unwrap();
        assert_eq!(prefixed.origin_form("/balance"), "/bank/balance");
        assert_eq!(
            prefixed.url_of("/balance?x=1").unwrap().as_str(),
            "http://127.0.0.1:3000/bank/balance?x=1"
        );
    }
}
