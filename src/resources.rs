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
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let kb = |key: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(key))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                    .map_or(0, |v| v * 1024)
            };
            u.rss_bytes = kb("VmRSS:");
            u.peak_rss_bytes = kb("VmHWM:");
        }
        u
    }

    pub fn cpu_s(&self) -> f64 {
        self.cpu_user_s + self.cpu_sys_s
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
}
