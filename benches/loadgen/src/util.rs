//! Small helpers: wall-clock stamps, /proc readings (CPU time, RSS, children, descriptors),
//! CPU affinity, socket options, argument parsing, latency histograms.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Microseconds since the Unix epoch (CLOCK_REALTIME: the same clock in every process here).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Clock ticks per second of /proc/<pid>/stat times.
pub fn clk_tck() -> u64 {
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// utime + stime of a process (all its threads, living and exited), in milliseconds.
pub fn cpu_ms(pid: u32) -> Option<f64> {
    cpu_split_ms(pid).map(|(u, s)| u + s)
}

/// utime and stime of a process (all its threads, living and exited), in milliseconds: the
/// time it ran in user space and in the kernel on its behalf (system calls, and on loopback
/// the receiving half of TCP, which runs in the sender's context).
pub fn cpu_split_ms(pid: u32) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // Fields after "pid (comm) ": state=0 ppid=1 ... utime=11 stime=12.
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    let tck = clk_tck() as f64;
    Some((ut as f64 * 1000.0 / tck, st as f64 * 1000.0 / tck))
}

/// Busy and total clock ticks of each CPU since boot (from /proc/stat).
pub fn cpu_ticks() -> Vec<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    s.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next()?.parse().ok()).unwrap_or(0.0)
}

/// Parent pid of a process.
pub fn ppid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// A field of /proc/<pid>/status in KiB (VmRSS, RssAnon, RssShmem, ...).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !matches!(proc_state(pid), Some('Z') | Some('X'))
}

fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next()
}

/// The command name (comm) of a process.
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Every descendant of `pid` (children, grandchildren, ...).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of: HashMap<u32, u32> = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                if let Some(pp) = ppid(p) {
                    parent_of.insert(p, pp);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (&c, &pp) in &parent_of {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out.sort_unstable();
    out
}

/// Open file descriptors of a process.
pub fn fd_count(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|d| d.count())
}

/// Socket inodes a process holds open.
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            if let Ok(t) = std::fs::read_link(e.path()) {
                let t = t.to_string_lossy();
                if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    if let Ok(i) = n.parse() {
                        out.push(i);
                    }
                }
            }
        }
    }
    out
}

/// The inode of the socket listening on 127.0.0.1:`port` (from /proc/net/tcp).
pub fn listening_inode(port: u16) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/tcp").ok()?;
    for line in s.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let local = f[1];
        let state = f[3];
        let lport = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
        if state == "0A" && lport == Some(port) {
            return f[9].parse().ok();
        }
    }
    None
}

/// Pins the calling process (and the children it starts later) to the listed CPUs.
pub fn pin_self(cpus: &[usize]) -> std::io::Result<()> {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// CPUs the calling process may run on.
pub fn own_affinity() -> Vec<usize> {
    let mut out = Vec::new();
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            for c in 0..libc::CPU_SETSIZE as usize {
                if libc::CPU_ISSET(c, &set) {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// Parses "0", "0,1", "2-3" into CPU numbers.
pub fn parse_cpus(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                out.extend(a..=b);
            }
        } else if let Ok(a) = part.parse() {
            out.push(a);
        }
    }
    out
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> std::io::Result<()> {
    let r = unsafe {
        libc::setsockopt(fd, level, name, &value as *const _ as *const libc::c_void, std::mem::size_of::<libc::c_int>() as libc::socklen_t)
    };
    if r != 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// IP_BIND_ADDRESS_NO_PORT: a socket bound to a source address gets its port at connect time,
/// so the 4-tuple (not the source address alone) must be unique: each 127.0.0.x source address
/// adds a whole ephemeral-port range per destination.
pub fn set_bind_no_port(fd: RawFd) -> std::io::Result<()> {
    setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)
}

/// SO_LINGER 0: closing sends a reset and leaves no TIME_WAIT entry behind, so tens of thousands
/// of subscribers per scenario do not exhaust the port ranges for the next one.
pub fn set_linger_zero(fd: RawFd) -> std::io::Result<()> {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if r != 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The soft open-file limit of this process.
pub fn nofile_limit() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    r.rlim_cur
}

/// Raises the soft open-file limit to the hard one.
pub fn raise_nofile() {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// `--name value` / `--flag` arguments.
pub struct Args {
    map: HashMap<String, String>,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut map = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            let Some(name) = a.strip_prefix("--") else { return Err(format!("unexpected argument {a:?}")) };
            if let Some((k, v)) = name.split_once('=') {
                map.insert(k.to_string(), v.to_string());
                i += 1;
            } else if i + 1 < args.len() && !args[i + 1].starts_with("--") {
                map.insert(name.to_string(), args[i + 1].clone());
                i += 2;
            } else {
                map.insert(name.to_string(), "true".to_string());
                i += 1;
            }
        }
        Ok(Args { map })
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.map.get(k).map(String::as_str)
    }
}

/// A latency histogram in microseconds, 1 µs .. 1 hour, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// The recorded values as [value, count] pairs (how workers hand their histogram over).
pub fn hist_to_json(h: &Histogram<u64>) -> Value {
    Value::Array(h.iter_recorded().map(|v| json!([v.value_iterated_to(), v.count_at_value()])).collect())
}

pub fn hist_add_json(h: &mut Histogram<u64>, v: &Value) {
    if let Some(arr) = v.as_array() {
        for pair in arr {
            if let (Some(val), Some(n)) = (pair.get(0).and_then(Value::as_u64), pair.get(1).and_then(Value::as_u64)) {
                let _ = h.record_n(val.max(1), n);
            }
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Percentiles of a µs histogram, in milliseconds.
pub fn hist_summary_ms(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    let q = |p: f64| round3(h.value_at_quantile(p) as f64 / 1000.0);
    json!({
        "count": h.len(),
        "mean": round3(h.mean() / 1000.0),
        "p50": q(0.50),
        "p90": q(0.90),
        "p99": q(0.99),
        "p99_9": q(0.999),
        "max": round3(h.max() as f64 / 1000.0),
    })
}

pub fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}
