//! What a process holds open, through `/proc/PID/fd` and its network namespace's
//! `/proc/PID/net` tables: connections, listening sockets, database files.

use std::collections::HashMap;
use std::path::Path;

/// The targets of a process's file descriptors (`socket:[123]`, `/path`, `pipe:[456]`…).
fn fd_links(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("list /proc/{pid}/fd: {e}"))
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

/// The TCP sockets of a process's network namespace: inode → (state, bytes received but
/// not yet read). State `0A` is LISTEN.
fn tcp_sockets(pid: u32) -> HashMap<String, (String, u64)> {
    let mut sockets = HashMap::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let (Some(st), Some(queues), Some(inode)) =
                (fields.get(3), fields.get(4), fields.get(9))
            {
                let rx = queues
                    .split_once(':')
                    .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())
                    .unwrap_or(0);
                sockets.insert(inode.to_string(), (st.to_string(), rx));
            }
        }
    }
    sockets
}

fn socket_inode(link: &str) -> Option<&str> {
    link.strip_prefix("socket:[").and_then(|l| l.strip_suffix(']'))
}

/// The open file descriptors of a process, by kind.
#[derive(Clone, Copy, Debug)]
pub struct Fds {
    pub all: usize,
    /// TCP connections (not listening sockets): they come and go with the clients.
    pub connections: usize,
    /// The SQLite files (database, -wal, -shm): their number follows the connection pool.
    pub database: usize,
    /// epoll and eventfd descriptors: on PostgreSQL each pooled connection (the blocking
    /// client runs its own small runtime) holds some, so their number follows the pool too.
    pub events: usize,
    /// TCP connections to the port given to [`fd_counts_to`] (PostgreSQL's).
    pub peers: usize,
}

impl Fds {
    /// The descriptors that do not depend on the traffic: what must not grow from one
    /// process generation to the next.
    pub fn stable(&self) -> usize {
        self.all - self.connections - self.database
    }

    /// [`Fds::stable`] on PostgreSQL: each pooled connection (counted in [`Fds::peers`])
    /// also holds a unix socket, and epoll and eventfd descriptors (the blocking client runs
    /// a small runtime of its own), so those follow the pool as the connections do.
    pub fn stable_on_postgres(&self) -> usize {
        (self.stable() - self.events).saturating_sub(self.peers)
    }
}

/// Counts the open file descriptors of `pid`; `database` is the SQLite file.
pub fn fd_counts(pid: u32, database: &Path) -> Fds {
    fd_counts_to(pid, database, None)
}

/// [`fd_counts`], also counting the TCP connections to `peer_port` ([`Fds::peers`]).
pub fn fd_counts_to(pid: u32, database: &Path, peer_port: Option<u16>) -> Fds {
    let links = fd_links(pid);
    let mut peer_inodes = std::collections::HashSet::new();
    if let Some(port) = peer_port {
        for table in ["tcp", "tcp6"] {
            let text =
                std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if let (Some(remote), Some(inode)) = (fields.get(2), fields.get(9))
                    && remote
                        .rsplit_once(':')
                        .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                        .is_some_and(|p| p == port)
                {
                    peer_inodes.insert(inode.to_string());
                }
            }
        }
    }
    let tcp = tcp_sockets(pid);
    let connection = |link: &String| {
        let Some(inode) = socket_inode(link) else { return false };
        // A socket closed between the two reads is in neither table: a connection too.
        tcp.get(inode).is_none_or(|(st, _)| st != "0A") && !unix_socket(inode)
    };
    let database = database.to_str().expect("utf-8 path");
    Fds {
        all: links.len(),
        connections: links.iter().filter(|l| connection(l)).count(),
        database: links.iter().filter(|l| l.starts_with(database)).count(),
        events: links
            .iter()
            .filter(|l| *l == "anon_inode:[eventfd]" || *l == "anon_inode:[eventpoll]")
            .count(),
        peers: links
            .iter()
            .filter(|l| socket_inode(l).is_some_and(|i| peer_inodes.contains(i)))
            .count(),
    }
}

/// True if the process holds at least one accepted TCP connection and has read every byte
/// received on each (so a request whose head was sent is being handled).
pub fn server_has_read_its_connections(pid: u32) -> bool {
    let tcp = tcp_sockets(pid);
    let connections: Vec<u64> = fd_links(pid)
        .iter()
        .filter_map(|l| tcp.get(socket_inode(l)?))
        .filter(|(st, _)| st != "0A")
        .map(|&(_, rx)| rx)
        .collect();
    !connections.is_empty() && connections.iter().all(|&rx| rx == 0)
}

fn unix_socket(inode: &str) -> bool {
    std::fs::read_to_string("/proc/net/unix")
        .is_ok_and(|t| t.lines().skip(1).any(|l| l.split_whitespace().nth(6) == Some(inode)))
}
