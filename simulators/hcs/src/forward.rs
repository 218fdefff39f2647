//! The listeners' data plane: a real TCP socket on VIP:port (a loopback address on Linux, so
//! nothing needs privileges), each accepted connection spliced (`copy_bidirectional`) to one
//! member of the listener's default pool. Members that are `ONLINE` — or `NO_MONITOR`, as a
//! pool without a health monitor sends traffic to all its members — with `admin_state_up` and
//! a weight above 0 take traffic; with none, the connection is accepted and closed at once.
//! `ROUND_ROBIN` goes round the members in creation order (weights other than 0 are not
//! weighed), `LEAST_CONNECTIONS` picks the member with the fewest open connections,
//! `SOURCE_IP` hashes the client address.

use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::state::{Sh, World};

/// Binds VIP:port now (so a port the host cannot give is an error of the create call).
pub(crate) fn bind(vip: Ipv4Addr, port: u16) -> std::io::Result<TcpListener> {
    let std = std::net::TcpListener::bind((vip, port))?;
    std.set_nonblocking(true)?;
    TcpListener::from_std(std)
}

/// The forwarder of one listener; aborting it closes the socket.
pub(crate) fn spawn(sh: Sh, listener_id: String, socket: TcpListener) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        loop {
            let Ok((conn, peer)) = socket.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let target = pick(&mut sh.lock(), &listener_id, peer);
            match target {
                Some((addr, active)) => {
                    tokio::spawn(splice(conn, addr, active));
                }
                None => drop(conn),
            }
        }
    })
    .abort_handle()
}

/// The member the next connection from `peer` goes to, with its connection counter.
fn pick(w: &mut World, listener_id: &str, peer: SocketAddr) -> Option<(SocketAddr, Arc<AtomicUsize>)> {
    let pool_id = w.elb.listeners.get(listener_id)?.default_pool_id.clone()?;
    let mut up: Vec<_> = w
        .elb
        .members
        .values()
        .filter(|m| m.pool_id == pool_id && m.admin_state_up && m.weight > 0 && m.status != "OFFLINE")
        .map(|m| (m.seq, SocketAddr::from((m.address, m.port)), m.active.clone()))
        .collect();
    if up.is_empty() {
        return None;
    }
    up.sort_by_key(|m| m.0);
    let pool = w.elb.pools.get_mut(&pool_id)?;
    let i = match pool.algorithm.as_str() {
        "LEAST_CONNECTIONS" => (0..up.len()).min_by_key(|i| up[*i].2.load(Ordering::Relaxed))?,
        "SOURCE_IP" => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            peer.ip().hash(&mut h);
            (h.finish() % up.len() as u64) as usize
        }
        _ => {
            let i = pool.next % up.len();
            pool.next = pool.next.wrapping_add(1);
            i
        }
    };
    let (_, addr, active) = up.swap_remove(i);
    Some((addr, active))
}

async fn splice(mut client: TcpStream, target: SocketAddr, active: Arc<AtomicUsize>) {
    active.fetch_add(1, Ordering::Relaxed);
    let connect = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target)).await;
    if let Ok(Ok(mut backend)) = connect {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    } else {
        tracing::debug!(%target, "ELB member refused the connection");
    }
    active.fetch_sub(1, Ordering::Relaxed);
}
