//! Building requests: the parts of every request made once per thread, so that a request is then
//! a few reference-count bumps and the header map hyper needs.
//!
//! The same parts give `burst` its raw HTTP/1.1 bytes ([`crate::engine::raw`] writes them), so a
//! burst sends exactly what a run sends.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, HOST};
use hyper::{Method, Request, Uri};

use crate::plan::api::{Api, BodyTemplate, Header};
use crate::plan::ops::{AmountSpec, Kind, Op};
use crate::plan::target::Target;

/// Widest amount range whose bodies are all built in advance.
const PRECOMPUTED_AMOUNTS: i64 = 10_000;

/// The request targets of one replica.
#[derive(Debug)]
struct Replica {
    deposit: Uri,
    withdraw: Uri,
    host: HeaderValue,
}

/// The parts of every deposit and withdrawal, for every replica.
#[derive(Debug)]
pub struct Requests {
    replicas: Vec<Replica>,
    deposit: Method,
    withdraw: Method,
    headers: Vec<Header>,
    bodies: Bodies,
}

impl Requests {
    /// The parts for `targets` and `api`, with the bodies of `amounts` built in advance when the
    /// range is narrow enough.
    pub fn new(targets: &[Target], api: &Api, amounts: AmountSpec) -> anyhow::Result<Self> {
        let uri = |target: &Target, path: &str| {
            let origin = target.origin_form(path);
            Uri::try_from(origin.as_str())
                .with_context(|| format!("`{origin}` is not a valid request target"))
        };
        let replicas = targets
            .iter()
            .map(|target| {
                Ok(Replica {
                    deposit: uri(target, &api.deposit.path)?,
                    withdraw: uri(target, &api.withdraw.path)?,
                    host: HeaderValue::from_str(&target.host)
                        .with_context(|| format!("`{}` is not a valid Host header", target.host))?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Requests {
            replicas,
            deposit: api.deposit.method.clone(),
            withdraw: api.withdraw.method.clone(),
            headers: api.headers.clone(),
            bodies: Bodies::new(&api.body, amounts),
        })
    }

    /// How many replicas requests are spread over.
    pub fn replicas(&self) -> usize {
        self.replicas.len()
    }

    /// The request of `op` to replica `replica`, with its idempotency key if it has one.
    #[inline]
    pub fn build(&self, op: Op, replica: usize, key: Option<&HeaderValue>) -> Request<Full<Bytes>> {
        let target = &self.replicas[replica];
        let (method, uri) = match op.kind {
            Kind::Deposit => (&self.deposit, &target.deposit),
            Kind::Withdraw => (&self.withdraw, &target.withdraw),
        };
        let mut request = Request::new(Full::new(self.bodies.get(op.amount)));
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, target.host.clone());
        for header in &self.headers {
            headers.append(header.name.clone(), header.value.clone());
        }
        if let Some(key) = key {
            headers.insert(racebank::KEY_HEADER, key.clone());
        }
        request
    }

    /// The request of `op` to `replica` as HTTP/1.1 bytes, asking the server to close the
    /// connection after answering.
    pub fn raw(&self, op: Op, replica: usize) -> Vec<u8> {
        let request = self.build(op, replica, None);
        let body = self.bodies.get(op.amount);
        let mut raw = format!("{} {} HTTP/1.1\r\n", request.method(), request.uri()).into_bytes();
        for (name, value) in request.headers() {
            raw.extend_from_slice(name.as_str().as_bytes());
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(value.as_bytes());
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(
            format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        raw.extend_from_slice(&body);
        raw
    }
}

/// The body of every amount, built once when the range is narrow enough.
#[derive(Debug)]
enum Bodies {
    Table {
        min: i64,
        bodies: Vec<Bytes>,
        template: BodyTemplate,
    },
    Format(BodyTemplate),
}

impl Bodies {
    fn new(template: &BodyTemplate, amounts: AmountSpec) -> Self {
        let template = template.clone();
        if amounts.max - amounts.min < PRECOMPUTED_AMOUNTS {
            let bodies = (amounts.min..=amounts.max)
                .map(|amount| template.render(amount))
                .collect();
            Bodies::Table {
                min: amounts.min,
                bodies,
                template,
            }
        } else {
            Bodies::Format(template)
        }
    }

    #[inline]
    fn get(&self, amount: i64) -> Bytes {
        match self {
            Bodies::Table {
                min,
                bodies,
                template,
            } => match usize::try_from(amount - min)
                .ok()
                .and_then(|i| bodies.get(i))
            {
                // Cloning `Bytes` bumps a reference count; it does not copy.
                Some(bytes) => bytes.clone(),
                None => template.render(amount),
            },
            Bodies::Format(template) => template.render(amount),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::api::ApiSpec;

    #[test]
    fn bodies_are_built_once_for_narrow_ranges_and_formatted_for_wide_ones() {
        let template = Api::default().body;
        let narrow = Bodies::new(&template, AmountSpec { min: 1, max: 100 });
        assert!(matches!(&narrow, Bodies::Table { bodies, .. } if bodies.len() == 100));
        assert_eq!(narrow.get(42), Bytes::from_static(br#"{"amount":42}"#));
        let wide = Bodies::new(
            &template,
            AmountSpec {
                min: 1,
                max: 1_000_000,
            },
        );
        assert!(matches!(wide, Bodies::Format(_)));
        assert_eq!(
            wide.get(123_456),
            Bytes::from_static(br#"{"amount":123456}"#)
        );
    }

    #[test]
    fn requests_go_to_their_replica_with_every_header_and_the_raw_form_matches() {
        let targets: Vec<Target> = ["http://127.0.0.1:3000", "http://127.0.0.1:3001/bank"]
            .iter()
            .map(|url| Target::new(&url.parse().unwrap()).unwrap())
            .collect();
        let api = ApiSpec {
            headers: vec!["Authorization: Bearer t".parse().unwrap()],
            ..ApiSpec::default()
        }
        .build()
        .unwrap();
        let requests = Requests::new(&targets, &api, AmountSpec { min: 5, max: 5 }).unwrap();
        let deposit = Op {
            kind: Kind::Deposit,
            amount: 5,
        };
        let request = requests.build(deposit, 1, None);
        assert_eq!(request.uri(), "/bank/deposit");
        assert_eq!(request.headers()[HOST], "127.0.0.1:3001");
        assert_eq!(request.headers()["authorization"], "Bearer t");
        assert_eq!(request.headers()["content-type"], "application/json");
        let raw = String::from_utf8(requests.raw(deposit, 0)).unwrap();
        assert!(
            raw.starts_with("POST /deposit HTTP/1.1\r\nhost: 127.0.0.1:3000\r\n"),
            "{raw}"
        );
        assert!(raw.contains("authorization: Bearer t\r\n"), "{raw}");
        assert!(
            raw.ends_with("content-length: 12\r\nconnection: close\r\n\r\n{\"amount\":5}"),
            "{raw}"
        );
    }
}
