//! Sizes that come from flags, a model's config.json or a file's shape attribute are checked
//! against what the machine can hold before anything is allocated: an allocation the allocator
//! cannot serve aborts the process (SIGABRT, no message), and one that overcommit lets through
//! ends in the OOM killer. Either way the user gets no `error:` naming the flag.

use anyhow::{Result, bail};

/// Upper limit when the available memory cannot be read (no /proc): 1 TiB.
const FALLBACK_LIMIT: u128 = 1 << 40;

/// Bytes this process can still allocate: MemAvailable + SwapFree from /proc/meminfo, capped by
/// a cgroup v2 limit when one is set. None when neither can be read.
pub fn available_bytes() -> Option<u128> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u128> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        let kb: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    let mut avail = field("MemAvailable:")? + field("SwapFree:").unwrap_or(0);
    let cg = |f: &str| -> Option<u128> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if let (Some(max), Some(current)) = (cg("memory.max"), cg("memory.current")) {
        avail = avail.min(max.saturating_sub(current));
    }
    Some(avail)
}

/// A byte count for messages: "1.5 GB", "931 TB".
pub fn human_bytes(b: u128) -> String {
    let units = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} bytes")
    } else if v >= 100.0 {
        format!("{v:.0} {}", units[u])
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Errors when `needed` bytes are more than this machine can hold. `what` says which flags or
/// file fields asked for them, e.g. "--hidden 1000000000000 (the model's parameters)".
pub fn check_fits(needed: u128, what: &str) -> Result<()> {
    let (limit, source) = match available_bytes() {
        Some(a) => (a, "available (MemAvailable + free swap)"),
        None => (
            FALLBACK_LIMIT,
            "the 1 TB limit used where /proc/meminfo is absent",
        ),
    };
    if needed > limit {
        bail!(
            "{what} needs about {} of memory, more than the {} {source}",
            human_bytes(needed),
            human_bytes(limit)
        );
    }
    Ok(())
}

/// A vector with room for `n` elements, or an error naming `what` instead of an abort.
pub fn try_with_capacity<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let bytes = (n as u128) * (std::mem::size_of::<T>() as u128);
    check_fits(bytes, what)?;
    let mut v = Vec::new();
    if v.try_reserve_exact(n).is_err() {
        bail!(
            "{what} needs {} of memory, which could not be allocated",
            human_bytes(bytes)
        );
    }
    Ok(v)
}

/// `n` copies of `value`, or an error naming `what`.
pub fn try_filled<T: Clone>(n: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = try_with_capacity(n, what)?;
    v.resize(n, value);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_requests_are_errors_not_aborts() {
        let e = try_with_capacity::<f64>(usize::MAX / 16, "--test 1e18")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--test 1e18") && e.contains("memory"), "{e}");
        assert!(try_filled(10, 0u8, "ten bytes").unwrap().len() == 10);
        assert!(check_fits(u128::MAX, "everything").is_err());
    }

    #[test]
    fn bytes_read_as_units() {
        assert_eq!(human_bytes(12), "12 bytes");
        assert_eq!(human_bytes(1_500_000_000), "1.5 GB");
        assert_eq!(human_bytes(4_000_000_000_000), "4.0 TB");
    }
}
