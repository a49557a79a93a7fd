//! Statistics over the samples: medians and spreads per (workload, tool) cell, traced ÷ untraced
//! ratios, the lockstep pairs, and the correlation of run time with steal time.
use super::{
    measure::{Sample, Tool},
    page::Page,
    workload::Kind,
};

pub(super) fn median(v: &[u64]) -> f64 {
    median_f64(&mut v.iter().map(|&x| x as f64).collect::<Vec<_>>())
}

/// The median of `v` (NaN if empty), which it leaves sorted.
fn median_f64(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

/// Pearson correlation of the pairs (None with fewer than 3 or no variance).
pub(super) fn pearson(xy: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let v: Vec<(f64, f64)> = xy.filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    if v.len() < 3 {
        return None;
    }
    let n = v.len() as f64;
    let (mx, my) = (
        v.iter().map(|p| p.0).sum::<f64>() / n,
        v.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in &v {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Medians of one (workload, tool) cell.
pub(super) struct Cell {
    pub(super) elapsed: f64,
    pub(super) wall: f64,
    pub(super) cpu_us: f64,
    pub(super) workload_cpu_us: f64,
    pub(super) min: f64,
    pub(super) max: f64,
    pub(super) runs: usize,
}

impl Page<'_> {
    pub(super) fn cell(&self, w: Kind, t: &Tool) -> Option<Cell> {
        let s = self.samples.get(&(w, t.clone()))?;
        let pick = |f: fn(&Sample) -> u64| median(&s.iter().map(f).collect::<Vec<_>>());
        Some(Cell {
            elapsed: pick(|s| s.elapsed_ns),
            wall: pick(|s| s.wall_ns),
            cpu_us: pick(|s| s.tool_cpu_us),
            workload_cpu_us: pick(|s| s.workload_cpu_us),
            min: s.iter().map(|s| s.elapsed_ns).min()? as f64,
            max: s.iter().map(|s| s.elapsed_ns).max()? as f64,
            runs: s.len(),
        })
    }

    pub(super) fn ratio(&self, w: Kind, t: &Tool) -> Option<f64> {
        Some(self.cell(w, t)?.elapsed / self.cell(w, &Tool::Untraced)?.elapsed)
    }

    /// Lockstep pairs of `t`: (median of traced/untraced per pair, min, max, pairs).
    pub(super) fn lockstep_ratio(&self, t: &Tool) -> Option<(f64, f64, f64, usize)> {
        let pairs = self.lockstep.get(t).filter(|p| !p.is_empty())?;
        let mut r: Vec<f64> = pairs.iter().map(|&(u, t)| t as f64 / u as f64).collect();
        let med = median_f64(&mut r);
        let n = r.len();
        Some((med, r[0], r[n - 1], n))
    }

    pub(super) fn loads(&self) -> (f64, f64, f64) {
        let mut l: Vec<f64> = self
            .samples
            .values()
            .flatten()
            .map(|s| s.load1)
            .filter(|x| x.is_finite())
            .collect();
        l.sort_by(f64::total_cmp);
        if l.is_empty() {
            return (f64::NAN, f64::NAN, f64::NAN);
        }
        (l[0], l[l.len() / 2], l[l.len() - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_correlation() {
        assert_eq!(median(&[3, 1, 2]), 2.0);
        assert_eq!(median(&[4, 1, 3, 2]), 2.5);
        assert!(median(&[]).is_nan());
        let line = [(1.0, 2.0), (2.0, 4.0), (3.0, 6.0)];
        assert!((pearson(line.into_iter()).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(pearson([(1.0, 2.0), (2.0, 4.0)].into_iter()), None);
        assert_eq!(
            pearson([(1.0, 1.0), (2.0, 1.0), (3.0, 1.0)].into_iter()),
            None
        );
    }
}
