//! Helpers for tests and benchmarks: a throwaway `redis-server` on a free port, with no
//! persistence, stopped when dropped. Missing `redis-server` is an error that says how to
//! install it (tests that need Redis fail rather than pass silently).
//!
//! Not part of the crate's API: included by path where needed (these tests' support, the
//! benches, and the Redis adapter's unit tests), each using part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

impl RedisServer {
    /// Starts `redis-server` on a free port of 127.0.0.1 and waits until it answers.
    pub fn start() -> Result<RedisServer, String> {
        let mut last = String::new();
        // A port free a moment ago may be taken before redis-server binds it (by another
        // test's server, or as a client's local port): then try another.
        for _ in 0..5 {
            let port = free_port()?;
            if !claim(port) {
                // Another server of this process has it, perhaps stopped for a while (a restart
                // test): its nodes would come back to this one.
                continue;
            }
            let mut server = RedisServer { child: None, port };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (all data is lost: it has no persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the server keeps its port and connections but answers nothing (Redis
    /// unreachable, as a partition or a stuck host looks to its clients).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`RedisServer::pause`]: it answers again, with its data.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg(sig).arg(c.id().to_string()).status();
        }
    }

    /// Starts a new, empty server on the same port after [`RedisServer::stop`].
    pub fn start_again(&mut self) -> Result<(), String> {
        self.spawn()
    }

    /// Stops it and starts a new, empty one on the same port.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"]);
        self.child = Some(spawn_serving(cmd, self.port)?);
        Ok(())
    }
}

/// Spawns `cmd` (a `redis-server` on `port`) and waits until that very process answers there:
/// a PING answered by another process that holds the port (another test's server) does not
/// count. Its error when the port was taken says so.
fn spawn_serving(mut cmd: Command, port: u16) -> Result<Child, String> {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| {
        format!("cannot start redis-server ({e}): the Redis adapter's tests need a real Redis; install it with `bash scripts/setup.sh --with-redis`")
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on port {port} exited ({status}): the port was taken"));
        }
        if served_by(port, child.id()) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("redis-server on port {port} did not answer within 10 s"))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Claims `port` for one server of this process, for the rest of the process: false if a server
/// had it already.
fn claim(port: u16) -> bool {
    static CLAIMED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut claimed = CLAIMED.lock().unwrap_or_else(|p| p.into_inner());
    if claimed.contains(&port) {
        return false;
    }
    claimed.push(port);
    true
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Whether the Redis answering on `port` is process `pid` (its `INFO server` names it).
fn served_by(port: u16, pid: u32) -> bool {
    use std::io::{BufRead, BufReader, Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let mut r = BufReader::new(s);
    let mut head = String::new();
    if r.read_line(&mut head).is_err() {
        return false;
    }
    let Some(len) = head.trim_end().strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) else { return false };
    let mut body = vec![0u8; len];
    if r.read_exact(&mut body).is_err() {
        return false;
    }
    String::from_utf8_lossy(&body).lines().any(|l| l.trim_end() == format!("process_id:{pid}"))
}

/// A Redis Cluster of `redis-server --cluster-enabled yes` processes (one shard each, no
/// replicas) on free ports, its slots spread by `redis-cli --cluster create`; stopped when
/// dropped.
pub struct RedisCluster {
    children: Vec<Child>,
    pub ports: Vec<u16>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    pub fn start(shards: usize) -> Result<RedisCluster, String> {
        let dir = std::env::temp_dir().join(format!("sse-redis-cluster-{}-{}", std::process::id(), free_port()?));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut c = RedisCluster { children: Vec::new(), ports: Vec::new(), dir };
        for _ in 0..shards {
            let mut attempts = 0;
            let (child, port) = loop {
                let port = free_port()?;
                let mut cmd = Command::new("redis-server");
                cmd.args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "no",
                ])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
                    "--cluster-node-timeout",
                    "2000",
                ])
                .arg("--dir")
                .arg(&c.dir);
                match spawn_serving(cmd, port) {
                    Ok(child) => break (child, port),
                    Err(e) if attempts == 4 => return Err(e),
                    Err(_) => attempts += 1,
                }
            };
            c.children.push(child);
            c.ports.push(port);
        }
        let addrs: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .map_err(|e| format!("redis-cli --cluster create: {e}"))?;
        if !out.status.success() {
            return Err(format!("redis-cli --cluster create failed: {}", String::from_utf8_lossy(&out.stdout)));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.ports.iter().all(|p| c.cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok")) {
            if Instant::now() > deadline {
                return Err("the Redis Cluster did not reach cluster_state:ok in 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(c)
    }

    /// `REDIS_CLUSTER_URLS` for it.
    pub fn urls(&self) -> String {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    /// `redis-cli -p <port> <args>`'s output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The number of keys each shard holds.
    pub fn keys_per_shard(&self) -> Vec<usize> {
        self.ports.iter().map(|p| self.cli(*p, &["DBSIZE"]).trim().parse().unwrap_or(0)).collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
