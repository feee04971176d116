//! `request_headers` and `response_headers`: fields removed, set (replacing the
//! other side's) and added, on a listener as defaults and on a route on top. The
//! fields that frame a message or that Fulcrum itself sets cannot be touched, so a
//! rule can never make the two sides read a message differently.

use super::template::{Template, Vars, HEADER_VARS};
use crate::config::HeaderOpsConfig;

/// Which way the fields go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// To the backend.
    Request,
    /// To the client.
    Response,
}

/// Fields that no rule may name, and why.
fn refused(side: Side, name: &str) -> Option<&'static str> {
    const FRAMING: &[&str] = &[
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ];
    if FRAMING.contains(&name) {
        return Some("it frames the message or the connection; Fulcrum sets it");
    }
    match side {
        Side::Request if name == "host" => Some("set the pool's host instead"),
        Side::Request
            if matches!(name, "forwarded" | "via") || name.starts_with("x-forwarded-") =>
        {
            Some("Fulcrum sets the forwarding fields itself")
        }
        _ => None,
    }
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A rule that cannot be compiled: where it is (`set."X-A"`, `remove[0]`) and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpsError {
    /// `set`, `add` or `remove`.
    pub kind: &'static str,
    /// The field name under `set` / `add`.
    pub name: String,
    /// The position under `remove`.
    pub index: Option<usize>,
    /// Why.
    pub reason: String,
}

/// Compiled rules for one side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderOps {
    /// Lowercase names whose fields from the other side are dropped: `remove` and
    /// the names `set` replaces.
    drop: Vec<Box<str>>,
    /// Fields added, with names as written: `set` first, then `add`.
    add: Vec<(Box<str>, Template)>,
}

impl HeaderOps {
    /// Compiles `cfg`; an error says which rule and why.
    pub fn compile(cfg: &HeaderOpsConfig, side: Side) -> Result<Self, OpsError> {
        let mut ops = Self::default();
        let check = |key: OpsError, name: &str| -> Result<String, OpsError> {
            if !is_token(name) {
                let reason = "must be a field name: letters, digits and !#$%&'*+-.^_`|~";
                return Err(OpsError {
                    reason: reason.into(),
                    ..key
                });
            }
            let lower = name.to_ascii_lowercase();
            if let Some(why) = refused(side, &lower) {
                let reason = format!("{name} cannot be changed: {why}");
                return Err(OpsError { reason, ..key });
            }
            Ok(lower)
        };
        for (i, name) in cfg.remove.iter().enumerate() {
            let at = OpsError {
                kind: "remove",
                index: Some(i),
                ..OpsError::default()
            };
            let lower = check(at, name)?;
            ops.drop.push(lower.into());
        }
        for (kind, map) in [("set", &cfg.set), ("add", &cfg.add)] {
            for (name, value) in map {
                let key = OpsError {
                    kind,
                    name: name.clone(),
                    ..OpsError::default()
                };
                let lower = check(key.clone(), name)?;
                if ops.drop[..cfg.remove.len().min(ops.drop.len())]
                    .iter()
                    .any(|d| **d == *lower)
                {
                    let reason = format!("{name} is also in remove");
                    return Err(OpsError { reason, ..key });
                }
                if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                    let reason = "must not contain CR, LF or NUL".into();
                    return Err(OpsError { reason, ..key });
                }
                let template = Template::parse(value, HEADER_VARS)
                    .map_err(|reason| OpsError { reason, ..key })?;
                if kind == "set" {
                    ops.drop.push(lower.into());
                }
                ops.add.push((name.as_str().into(), template));
            }
        }
        Ok(ops)
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty() && self.add.is_empty()
    }

    /// The rules of `base` (a listener's) with `over` (a route's) applied after:
    /// a field the route removes or sets is neither kept nor added by the listener.
    pub fn then(base: &Self, over: &Self) -> Self {
        let overridden = |name: &str| over.drop.iter().any(|d| d.eq_ignore_ascii_case(name));
        let mut drop = base.drop.clone();
        drop.extend(over.drop.iter().filter(|d| !base.drop.contains(d)).cloned());
        let add = base
            .add
            .iter()
            .filter(|(n, _)| !overridden(n))
            .chain(&over.add)
            .cloned()
            .collect();
        Self { drop, add }
    }

    /// Whether a field named `name` from the other side is dropped.
    pub fn drops(&self, name: &[u8]) -> bool {
        self.drop
            .iter()
            .any(|d| crate::forward::same_name(name, d.as_bytes()))
    }

    /// The values of the added fields that have placeholders, filled for `vars`
    /// (`None` for a fixed one; an empty list when all are fixed, with no
    /// allocation): read the fields with [`HeaderOps::fields`].
    pub fn render(&self, vars: &Vars<'_>) -> Vec<Option<String>> {
        if self.add.iter().all(|(_, t)| t.fixed().is_some()) {
            return Vec::new();
        }
        self.add
            .iter()
            .map(|(_, t)| t.fixed().is_none().then(|| t.render(vars)))
            .collect()
    }

    /// The fields added, in order, with the values `rendered` by [`HeaderOps::render`].
    pub fn fields<'a>(
        &'a self,
        rendered: &'a [Option<String>],
    ) -> impl Iterator<Item = (&'a str, &'a str)> + Clone + 'a {
        self.add.iter().enumerate().map(move |(i, (name, t))| {
            let value = rendered.get(i).and_then(Option::as_deref);
            (&**name, value.or(t.fixed()).unwrap_or_default())
        })
    }

    /// The fields added for `vars`, owned.
    pub fn added(&self, vars: &Vars<'_>) -> Vec<(Box<str>, String)> {
        let rendered = self.render(vars);
        self.fields(&rendered)
            .map(|(n, v)| (n.into(), v.to_owned()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use super::*;

    fn cfg(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> HeaderOpsConfig {
        let map = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        HeaderOpsConfig {
            set: map(set),
            add: map(add),
            remove: remove.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn vars() -> Vars<'static> {
        Vars {
            client_ip: IpAddr::from([10, 0, 0, 1]),
            host: "h",
            request_id: "id",
            scheme: "https",
            route: "r",
            target: "/",
        }
    }

    #[test]
    fn set_replaces_add_appends_remove_drops() {
        let ops = HeaderOps::compile(
            &cfg(
                &[("X-Env", "prod")],
                &[("X-Client", "{client_ip}")],
                &["X-Debug"],
            ),
            Side::Request,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(ops.drops(b"x-debug") && ops.drops(b"X-ENV") && ops.drops(b"x_env"));
        assert!(!ops.drops(b"x-client"));
        assert_eq!(
            ops.added(&vars()),
            vec![
                ("X-Env".into(), "prod".into()),
                ("X-Client".into(), "10.0.0.1".into())
            ]
        );
    }

    #[test]
    fn a_route_overrides_its_listener() {
        let l = HeaderOps::compile(
            &cfg(&[("X-A", "l"), ("X-B", "l")], &[], &[]),
            Side::Response,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let r = HeaderOps::compile(&cfg(&[("x-a", "r")], &[], &["X-B"]), Side::Response)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let both = HeaderOps::then(&l, &r);
        assert_eq!(both.added(&vars()), vec![("x-a".into(), "r".into())]);
        assert!(both.drops(b"x-b"));
    }

    #[test]
    fn framing_and_forwarding_fields_are_refused() {
        let err = |c: HeaderOpsConfig, side| HeaderOps::compile(&c, side).err().unwrap_or_default();
        let e = err(cfg(&[("Content-Length", "1")], &[], &[]), Side::Response);
        assert_eq!((e.kind, e.name.as_str()), ("set", "Content-Length"));
        assert_eq!(
            err(cfg(&[], &[], &["x", "Upgrade"]), Side::Response).index,
            Some(1)
        );
        assert!(err(cfg(&[], &[], &["Transfer-Encoding"]), Side::Request)
            .reason
            .contains("frames"));
        assert!(err(cfg(&[("Host", "x")], &[], &[]), Side::Request)
            .reason
            .contains("pool's host"));
        assert!(
            err(cfg(&[], &[("X-Forwarded-For", "x")], &[]), Side::Request)
                .reason
                .contains("forwarding")
        );
        assert!(
            HeaderOps::compile(&cfg(&[("X-Forwarded-For", "x")], &[], &[]), Side::Response).is_ok()
        );
        assert!(err(cfg(&[("X-A", "a\r\nb")], &[], &[]), Side::Request)
            .reason
            .contains("CR"));
        assert!(err(cfg(&[("X A", "a")], &[], &[]), Side::Request)
            .reason
            .contains("field name"));
        assert!(err(cfg(&[("X-A", "{path}")], &[], &[]), Side::Request)
            .reason
            .contains("unknown placeholder"));
        assert!(err(cfg(&[("X-A", "a")], &[], &["x-a"]), Side::Request)
            .reason
            .contains("also in remove"));
    }
}
