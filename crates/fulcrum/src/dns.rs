//! DNS lookups for backend names and SRV records, with `hickory-resolver`: the
//! resolvers of the config (`resolvers`) or `/etc/resolv.conf`, with `/etc/hosts`.
//! Answers come back as [`Outcome`]s for `fulcrum_core::discover`, which decides
//! what they do to a pool. Never on a worker: the discovery task and config builds
//! call these.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use fulcrum_core::config::FamilyConfig;
use fulcrum_core::discover::dns::{srv_members, Outcome, SrvTarget};
use fulcrum_core::discover::{resolver_addr, Found};
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

/// Time one query may take, per attempt.
const TIMEOUT: Duration = Duration::from_secs(2);

/// A resolver for `servers` (`"ip"` or `"ip:port"`), or the system's when empty.
/// Nothing is cached: each name is asked again on its own schedule, and a cached
/// answer would hide a change until its TTL ran out a second time.
pub fn resolver(servers: &[String]) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if servers.is_empty() {
        TokioResolver::builder(provider).map_err(|e| format!("/etc/resolv.conf: {e}"))?
    } else {
        let mut name_servers = Vec::new();
        for s in servers {
            let addr = resolver_addr(s).ok_or_else(|| format!("invalid resolver {s:?}"))?;
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            name_servers.push(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]));
        }
        TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, Vec::new(), name_servers),
            provider,
        )
    };
    let opts = builder.options_mut();
    opts.timeout = TIMEOUT;
    opts.attempts = 2;
    opts.cache_size = 0;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    builder.build().map_err(|e| e.to_string())
}

fn wanted(family: FamilyConfig, ip: IpAddr) -> bool {
    match family {
        FamilyConfig::Any => true,
        FamilyConfig::Ipv4 => ip.is_ipv4(),
        FamilyConfig::Ipv6 => ip.is_ipv6(),
    }
}

fn ttl_left(valid_until: Instant) -> Duration {
    valid_until.saturating_duration_since(Instant::now())
}

/// What a failed lookup means: nothing there (with its negative TTL), or no answer.
fn failure(e: &NetError) -> Outcome {
    if e.is_no_records_found() || e.is_nx_domain() {
        let ttl = match e {
            NetError::Dns(hickory_resolver::net::DnsError::NoRecordsFound(n)) => {
                n.negative_ttl.map(|t| Duration::from_secs(u64::from(t)))
            }
            _ => None,
        };
        return Outcome::Empty { ttl };
    }
    Outcome::Failed(e.to_string())
}

/// The addresses of `host`, each a member at `port` with `weight`.
pub async fn lookup_name(
    r: &TokioResolver,
    host: &str,
    port: u16,
    weight: u32,
    family: FamilyConfig,
) -> Outcome {
    let ips = match lookup_ips(r, host, family).await {
        Ok(ips) => ips,
        Err(outcome) => return outcome,
    };
    let (ips, ttl) = ips;
    let found: Vec<Found> = ips
        .into_iter()
        .map(|ip| Found {
            addr: SocketAddr::new(ip, port),
            weight,
            backup: false,
        })
        .collect();
    if found.is_empty() {
        return Outcome::Empty { ttl: Some(ttl) };
    }
    Outcome::Records { found, ttl }
}

async fn lookup_ips(
    r: &TokioResolver,
    host: &str,
    family: FamilyConfig,
) -> Result<(Vec<IpAddr>, Duration), Outcome> {
    // As written: the search list and `ndots` apply as they would for libc.
    match r.lookup_ip(host).await {
        Ok(l) => Ok((
            l.iter().filter(|ip| wanted(family, *ip)).collect(),
            ttl_left(l.valid_until()),
        )),
        Err(e) => Err(failure(&e)),
    }
}

/// The members of the SRV records of `name`: each target's addresses (from the
/// answer's additional records, else looked up) at the record's port.
pub async fn lookup_srv(r: &TokioResolver, name: &str, family: FamilyConfig) -> Outcome {
    let lookup = match r.srv_lookup(name).await {
        Ok(l) => l,
        Err(e) => return failure(&e),
    };
    let mut ttl = ttl_left(lookup.valid_until());
    let mut targets = Vec::new();
    for record in lookup.answers() {
        let RData::SRV(srv) = &record.data else {
            continue;
        };
        let mut ips: Vec<IpAddr> = lookup
            .additionals()
            .iter()
            .filter(|a| a.name == srv.target)
            .filter_map(|a| match &a.data {
                RData::A(v4) => Some(IpAddr::V4(v4.0)),
                RData::AAAA(v6) => Some(IpAddr::V6(v6.0)),
                _ => None,
            })
            .filter(|ip| wanted(family, *ip))
            .collect();
        if ips.is_empty() {
            let target = srv.target.to_string();
            match lookup_ips(r, &target, family).await {
                Ok((found, t)) => {
                    ips = found;
                    ttl = ttl.min(t);
                }
                // A target without addresses is skipped; no answer at all fails
                // the whole lookup, so the last good members stay.
                Err(Outcome::Empty { .. }) => {}
                Err(other) => return other,
            }
        }
        targets.push(SrvTarget {
            priority: srv.priority,
            weight: srv.weight,
            port: srv.port,
            ips,
        });
    }
    let found = srv_members(&targets);
    if found.is_empty() {
        return Outcome::Empty { ttl: Some(ttl) };
    }
    Outcome::Records { found, ttl }
}

/// Runs `work` with a resolver for `servers` on a thread of its own and waits for
/// it: for config builds, which are synchronous and may run on a runtime's thread.
pub fn blocking<T, F>(
    servers: &[String],
    work: impl FnOnce(TokioResolver) -> F + Send + 'static,
) -> Result<T, String>
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    let servers = servers.to_vec();
    std::thread::Builder::new()
        .name("fulcrum-dns".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let r = resolver(&servers)?;
                Ok(work(r).await)
            })
        })
        .map_err(|e| e.to_string())?
        .join()
        .map_err(|_| "the DNS thread panicked".to_owned())?
}
