//! What the driver process itself costs: CPU seconds and resident memory, so a report can say
//! whether the generator, not the server, was the limit.

use serde::{Deserialize, Serialize};

/// A reading of the process's resource use.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

impl Usage {
    /// Reads the current process's usage (Linux; zeros elsewhere).
    pub fn now() -> Usage {
        let mut u = Usage::default();
        // SAFETY: getrusage fills the struct we pass and touches nothing else.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0 {
            let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
            u.cpu_user_s = secs(ru.ru_utime);
            u.cpu_sys_s = secs(ru.ru_stime);
        }
        (u.rss_bytes, u.peak_rss_bytes) = memory("self");
        u
    }

    /// Reads another live process's usage, a child's for instance (Linux; zeros elsewhere).
    pub fn of_process(pid: u32) -> Usage {
        let mut u = Usage::default();
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // Fields after the command name: state is field 3, utime 14 and stime 15.
            if let Some((_, rest)) = stat.rsplit_once(") ") {
                let f: Vec<&str> = rest.split_whitespace().collect();
                // SAFETY: sysconf only reads a system constant.
                let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
                let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                u.cpu_user_s = ticks(11) / tck;
                u.cpu_sys_s = ticks(12) / tck;
            }
        }
        (u.rss_bytes, u.peak_rss_bytes) = memory(&pid.to_string());
        u
    }

    pub fn cpu_s(&self) -> f64 {
        self.cpu_user_s + self.cpu_sys_s
    }

    pub fn peak_rss_mb(&self) -> f64 {
        self.peak_rss_bytes as f64 / 1048576.0
    }
}

/// The resident memory of `/proc/<who>/status` (`who`: `self` or a pid), now and at its peak
/// (`VmRSS`, `VmHWM`), in bytes; zeros where it cannot be read.
fn memory(who: &str) -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{who}/status")) else {
        return (0, 0);
    };
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |v| v * 1024)
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// The machine a run or check ran on, for reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs this process may use.
    pub cpus: usize,
    /// Physical memory (`MemTotal`), in bytes; 0 where unknown.
    pub memory_bytes: u64,
    pub os: String,
    /// The kernel release, where known.
    pub kernel: String,
    pub arch: String,
}

impl Machine {
    pub fn this() -> Machine {
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            os: std::env::consts::OS.to_string(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|k| k.trim().to_string())
                .unwrap_or_default(),
            arch: std::env::consts::ARCH.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let u = super::Usage::now();
        assert!(u.rss_bytes > 0);
        assert!(u.peak_rss_bytes >= u.rss_bytes);
    }

    #[test]
    fn reads_another_process_by_its_id() {
        let u = super::Usage::of_process(std::process::id());
        assert!(u.peak_rss_bytes > 0);
        assert_eq!(super::Usage::of_process(u32::MAX).peak_rss_bytes, 0);
    }
}
