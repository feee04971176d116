//! The https listeners' families: handshakes by result, and the seconds left
//! before each certificate expires (read from the certificates in use, so a
//! reloaded file shows at the next scrape).

use std::fmt;
use std::sync::atomic::Ordering;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge};

use super::{counter, family, gauge, Labels};
use crate::state::Snapshot;
use crate::stats::FAILURE_REASONS;

pub(super) fn encode(enc: &mut DescriptorEncoder<'_>, snap: &Snapshot) -> fmt::Result {
    let mut listeners: Vec<_> = snap
        .listeners
        .values()
        .filter_map(|l| Some((l.name.as_str(), l.tls.as_ref()?, &l.traffic.tls)))
        .collect();
    let renewals = crate::tls::acme::challenges().renewals();
    if !renewals.is_empty() {
        family(
            enc,
            (
                "fulcrum_acme_renewals",
                "ACME certificate issuances and renewals, by result.",
                None,
                Counter,
            ),
            |mut m| {
                for (name, [ok, failed]) in &renewals {
                    let base = Labels::front("listener", name);
                    counter(&mut m, &base.with("result", "ok"), *ok)?;
                    counter(&mut m, &base.with("result", "failed"), *failed)?;
                }
                Ok(())
            },
        )?;
    }
    if listeners.is_empty() {
        return Ok(());
    }
    listeners.sort_by(|a, b| a.0.cmp(b.0));
    family(
        enc,
        (
            "fulcrum_tls_handshakes",
            "TLS handshakes on https listeners, by result (ok, or why it failed).",
            None,
            Counter,
        ),
        |mut m| {
            for (name, _, stats) in &listeners {
                let base = Labels::front("listener", name);
                counter(
                    &mut m,
                    &base.with("result", "ok"),
                    stats.ok.load(Ordering::Relaxed),
                )?;
                for (reason, n) in FAILURE_REASONS.iter().zip(&stats.failed) {
                    counter(
                        &mut m,
                        &base.with("result", reason),
                        n.load(Ordering::Relaxed),
                    )?;
                }
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_tls_resumed_handshakes",
            "Completed handshakes that resumed a session (a ticket) rather than a full handshake.",
            None,
            Counter,
        ),
        |mut m| {
            for (name, _, stats) in &listeners {
                let l = Labels::front("listener", name);
                counter(&mut m, &l, stats.resumed.load(Ordering::Relaxed))?;
            }
            Ok(())
        },
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    family(
        enc,
        (
            "fulcrum_tls_certificate_expiry_seconds",
            "Seconds until each served certificate expires (negative once expired), \
             labelled with its first name.",
            None,
            Gauge,
        ),
        |mut m| {
            for (name, t, _) in &listeners {
                let set = t.resolver.set.load();
                for c in &set.certs {
                    let cert = c.names.first().map_or(c.cert_file.as_str(), String::as_str);
                    let labels = Labels::front("listener", name).with("certificate", cert);
                    gauge(&mut m, &labels, c.not_after.saturating_sub(now))?;
                }
            }
            Ok(())
        },
    )
}
