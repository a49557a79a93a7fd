//! Sync latencies in bounded memory: exact samples while there are few, then an HDR histogram
//! (the `hdrhistogram` crate) whose relative error is stated in the README. A daemon making
//! thousands of syncs a second must not keep every latency (10 GB a day at 4,500 syncs/s).
use hdrhistogram::Histogram;

/// Up to this many samples are kept exactly (nearest-rank percentiles are then exact).
pub const EXACT_SAMPLES: usize = 64;
/// Longest latency the histogram resolves (one hour, in ns); longer ones count as this.
const MAX_NS: u64 = 3_600_000_000_000;

/// Latencies of one file or one sync operation. One sample is held inline (most files are
/// synced once, if at all): no heap block per file until its second sync.
#[derive(Clone, Debug)]
pub struct Latency {
    data: Data,
}

/// `sigfig`: significant decimal digits of the histogram once samples overflow (kept in each
/// variant, beside the tag: a latency is 16 bytes, and every file state has one).
#[derive(Clone, Debug)]
enum Data {
    Empty { sigfig: u8 },
    One { sigfig: u8, ns: u64 },
    Many(Box<Many>),
}

/// Two samples or more: exact while few, then a histogram.
#[derive(Clone, Debug)]
struct Many {
    count: u64,
    max: u64,
    samples: Vec<u64>,
    hist: Option<Histogram<u32>>,
    sigfig: u8,
}

impl Many {
    fn record(&mut self, ns: u64) {
        let sigfig = self.sigfig;
        self.count += 1;
        self.max = self.max.max(ns);
        if let Some(h) = &mut self.hist {
            h.saturating_record(ns.clamp(1, MAX_NS));
            return;
        }
        self.samples.push(ns);
        if self.samples.len() > EXACT_SAMPLES {
            // Bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
            // sigfig <= 5), so this cannot fail; if it ever did, keep the exact samples.
            if let Ok(mut h) = Histogram::<u32>::new_with_bounds(1, MAX_NS, sigfig) {
                for &s in &self.samples {
                    h.saturating_record(s.clamp(1, MAX_NS));
                }
                self.samples = Vec::new();
                self.hist = Some(h);
            }
        }
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self::per_file()
    }
}

impl Latency {
    /// Per file: 2 significant digits (values within 1%; ~12 KiB once a file has more than
    /// [`EXACT_SAMPLES`] syncs, few files do).
    pub fn per_file() -> Self {
        Self::with_sigfig(2)
    }

    /// Per sync operation (a handful per trace): 3 significant digits (within 0.1%).
    pub fn per_op() -> Self {
        Self::with_sigfig(3)
    }

    fn with_sigfig(sigfig: u8) -> Self {
        Latency {
            data: Data::Empty { sigfig },
        }
    }

    pub fn record(&mut self, ns: u64) {
        match &mut self.data {
            Data::Empty { sigfig } => {
                self.data = Data::One {
                    sigfig: *sigfig,
                    ns,
                }
            }
            Data::One { sigfig, ns: first } => {
                let mut m = Many {
                    count: 1,
                    max: *first,
                    samples: vec![*first],
                    hist: None,
                    sigfig: *sigfig,
                };
                m.record(ns);
                self.data = Data::Many(Box::new(m));
            }
            Data::Many(m) => m.record(ns),
        }
    }

    pub fn count(&self) -> u64 {
        match &self.data {
            Data::Empty { .. } => 0,
            Data::One { .. } => 1,
            Data::Many(m) => m.count,
        }
    }

    /// Largest latency, exact.
    pub fn max(&self) -> u64 {
        match &self.data {
            Data::Empty { .. } => 0,
            Data::One { ns, .. } => *ns,
            Data::Many(m) => m.max,
        }
    }

    /// True while every sample is kept (percentiles are exact).
    #[cfg(test)]
    pub fn is_exact(&self) -> bool {
        !matches!(&self.data, Data::Many(m) if m.hist.is_some())
    }

    /// Nearest-rank percentile `p` (0..=100): exact while [`Self::is_exact`], else within the
    /// histogram's precision (never above the exact maximum).
    pub fn percentile(&self, p: f64) -> u64 {
        let m = match &self.data {
            Data::Empty { .. } => return 0,
            Data::One { ns, .. } => return *ns,
            Data::Many(m) => m,
        };
        if let Some(h) = &m.hist {
            return h.value_at_quantile(p / 100.0).min(m.max);
        }
        let mut v = m.samples.clone();
        v.sort_unstable();
        let r = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[r.clamp(1, v.len()) - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_while_few_samples() {
        let mut l = Latency::per_file();
        for i in 1..=EXACT_SAMPLES as u64 {
            l.record(i * 1000);
        }
        assert!(l.is_exact());
        assert_eq!(l.count(), EXACT_SAMPLES as u64);
        assert_eq!(l.percentile(50.0), 32_000);
        assert_eq!(l.max(), 64_000);
    }

    #[test]
    fn bounded_and_within_precision_with_many_samples() {
        let mut l = Latency::per_op();
        for i in 1..=100_000u64 {
            l.record(i * 1000); // 1 us .. 100 ms
        }
        assert!(!l.is_exact());
        assert_eq!(l.count(), 100_000);
        assert_eq!(l.max(), 100_000_000);
        let p50 = l.percentile(50.0) as f64;
        assert!(
            (p50 - 50_000_000.0).abs() / 50_000_000.0 < 0.001,
            "p50 {p50}"
        );
        let p99 = l.percentile(99.0) as f64;
        assert!(
            (p99 - 99_000_000.0).abs() / 99_000_000.0 < 0.001,
            "p99 {p99}"
        );
        let mut f = Latency::per_file();
        for i in 1..=10_000u64 {
            f.record(i * 1000);
        }
        let p50 = f.percentile(50.0) as f64;
        assert!((p50 - 5_000_000.0).abs() / 5_000_000.0 < 0.01, "p50 {p50}");
    }

    #[test]
    fn a_latency_is_two_words() {
        assert_eq!(std::mem::size_of::<Latency>(), 16);
    }

    #[test]
    fn empty_is_zero() {
        let l = Latency::per_file();
        assert_eq!((l.count(), l.percentile(99.0), l.max()), (0, 0, 0));
    }
}
