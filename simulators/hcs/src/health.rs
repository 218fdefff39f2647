//! Health monitors: one task per monitor connects to every member of its pool (at
//! `monitor_port`, else the member's port) every `delay` seconds (or the
//! `health_interval_override` knob), each probe bounded by `timeout`. `max_retries` failures in
//! a row make a member `OFFLINE`, one success `ONLINE`. Members are `OFFLINE` until their first
//! successful probe; a monitor probes at once when it is created and when a member is added.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::state::Sh;

struct Round {
    interval: Duration,
    timeout: Duration,
    targets: Vec<(String, SocketAddr)>,
}

fn plan(sh: &Sh, monitor_id: &str, only: Option<&str>) -> Option<Round> {
    let w = sh.lock();
    let m = w.elb.monitors.get(monitor_id)?;
    let o = w.knobs.health_interval_override;
    let interval = o.unwrap_or(Duration::from_secs(m.delay));
    let timeout = Duration::from_secs(m.timeout).min(o.unwrap_or(Duration::MAX));
    let targets = w
        .elb
        .members
        .values()
        .filter(|x| x.pool_id == m.pool_id && only.is_none_or(|id| x.id == id))
        .map(|x| {
            (
                x.id.clone(),
                SocketAddr::from((x.address, m.monitor_port.unwrap_or(x.port))),
            )
        })
        .collect();
    Some(Round {
        interval,
        timeout,
        targets,
    })
}

async fn probe(addr: SocketAddr, timeout: Duration) -> bool {
    matches!(tokio::time::timeout(timeout, TcpStream::connect(addr)).await, Ok(Ok(_)))
}

fn record(sh: &Sh, monitor_id: &str, member_id: &str, up: bool) {
    let mut w = sh.lock();
    let Some(max) = w.elb.monitors.get(monitor_id).map(|m| m.max_retries) else {
        return;
    };
    let Some(m) = w.elb.members.get_mut(member_id) else {
        return;
    };
    if up {
        m.fails = 0;
        m.status = "ONLINE";
    } else {
        m.fails += 1;
        if m.fails >= max {
            m.status = "OFFLINE";
        }
    }
}

async fn run_round(sh: &Sh, monitor_id: &str, only: Option<&str>) -> Option<Duration> {
    let round = plan(sh, monitor_id, only)?;
    for (member, addr) in round.targets {
        let up = probe(addr, round.timeout).await;
        record(sh, monitor_id, &member, up);
    }
    Some(round.interval)
}

/// The prober of one monitor; aborting it stops the probes.
pub(crate) fn spawn(sh: Sh, monitor_id: String) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        while let Some(interval) = run_round(&sh, &monitor_id, None).await {
            tokio::time::sleep(interval).await;
        }
    })
    .abort_handle()
}

/// One probe of a member just added, so it need not wait a whole interval.
pub(crate) fn probe_soon(sh: &Sh, monitor_id: &str, member_id: &str) {
    let (sh, monitor_id, member_id) = (sh.clone(), monitor_id.to_string(), member_id.to_string());
    tokio::spawn(async move { run_round(&sh, &monitor_id, Some(&member_id)).await });
}
