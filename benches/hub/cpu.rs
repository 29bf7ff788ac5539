//! CPU accounting from /proc (Linux): per thread of this process, and the broker's process, over a
//! measured window.

use std::collections::HashMap;
use std::time::Duration;

#[derive(Default, Clone)]
pub(crate) struct CpuSnap {
    pub(crate) threads: HashMap<u32, (String, f64)>,
    pub(crate) process: f64,
    pub(crate) broker: Option<f64>,
}

/// CPU used over a measured window, in cores (1.0 = one core busy all the time).
pub(crate) struct Cpu {
    pub(crate) process: f64,
    pub(crate) broker: Option<f64>,
    pub(crate) detail: String,
}

impl Cpu {
    /// "µs of CPU per message" for the bench process and the broker.
    pub(crate) fn per_msg(&self, msg_per_s: f64) -> String {
        if msg_per_s <= 0.0 {
            return String::new();
        }
        let us = |cores: f64| cores / msg_per_s * 1e6;
        match self.broker {
            Some(b) => format!(
                "{:.0} µs in this process + {:.0} µs in the broker",
                us(self.process),
                us(b)
            ),
            None => format!("{:.0} µs in this process", us(self.process)),
        }
    }
}

pub(crate) fn ticks_of(stat: &str) -> Option<f64> {
    // Fields after the `(comm)`: state is [0], utime [11], stime [12] (clock ticks, 100/s).
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(t / 100.0)
}

pub(crate) fn broker_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim() == "beam.smp").then_some(pid)
    })
}

pub(crate) fn cpu_snap(broker: Option<u32>) -> CpuSnap {
    let mut s = CpuSnap::default();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if let Some(t) = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .as_deref()
                .and_then(ticks_of)
            {
                s.threads.insert(tid, (comm.trim().to_string(), t));
            }
        }
    }
    s.process = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(ticks_of)
        .unwrap_or(0.0);
    s.broker = broker
        .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .as_deref()
        .and_then(ticks_of);
    s
}

pub(crate) fn cpu_between(a: &CpuSnap, b: &CpuSnap, wall: Duration) -> Cpu {
    let w = wall.as_secs_f64().max(1e-9);
    let mut groups: Vec<(String, f64)> = Vec::new();
    for (tid, (comm, t)) in &b.threads {
        let before = a.threads.get(tid).map_or(0.0, |x| x.1);
        // tokio names its async workers and its spawn_blocking threads alike.
        let name = if comm.starts_with("tokio-") {
            "tokio workers + blocking pool".to_string()
        } else if comm.starts_with("hub-") {
            "bench main".to_string()
        } else {
            comm.clone()
        };
        match groups.iter_mut().find(|g| g.0 == name) {
            Some(g) => g.1 += t - before,
            None => groups.push((name, t - before)),
        }
    }
    let process = (b.process - a.process) / w;
    let listed: f64 = groups.iter().map(|g| g.1).sum::<f64>() / w;
    if process - listed >= 0.01 {
        groups.push(("threads that exited".into(), (process - listed) * w));
    }
    groups.retain(|g| g.1 / w >= 0.01);
    groups.sort_by(|x, y| y.1.total_cmp(&x.1));
    let parts: Vec<String> = groups
        .iter()
        .map(|(n, t)| format!("{n} {:.2}", t / w))
        .collect();
    let broker = match (a.broker, b.broker) {
        (Some(x), Some(y)) => Some((y - x) / w),
        _ => None,
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let detail = format!(
        "this process {process:.2} cores [{}]{}, of {cores}",
        parts.join(", "),
        broker.map_or(String::new(), |b| format!(
            ", broker (beam.smp) {b:.2} cores"
        ))
    );
    Cpu {
        process,
        broker,
        detail,
    }
}
