//! Optional workload labels (`--metrics-labels cgroup,container,pod`) and the bound on how many
//! label sets are exported (`--metrics-top N`).
//!
//! The rule that keeps every counter monotonic: a label set is *admitted* the first time a
//! process of that workload is counted (a sync call, a finding, a closed dirty window...) while
//! fewer than N are admitted, and then keeps its own series for the rest of the run. Once N are
//! admitted, every other workload is counted in one more label set, every chosen label `other`.
//! Nothing is ever moved between series: an admitted series never vanishes or goes back, and
//! `other` only grows. (Demoting a quiet label set would have to either drop its series, which
//! could later reappear lower, or move its counts into `other`, which makes `rate(other)` jump:
//! both break what a Prometheus counter promises.) The price: on a node where workloads come
//! and go, the first N active ones keep the slots; `other` shows how much the rest do.
//!
//! Processes with no container or pod get the empty value (`container=""`), not `other`; a
//! process whose cgroup is unknown (gone before /proc was read) gets `""` for every label.
use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::Arc,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, LabelSetEncoder},
    metrics::{family::Family, TypedMetric},
    registry::{Metric, Registry, Unit},
};

use super::Escaped;
use crate::cgroup::Workload;

/// Default of `--metrics-top`.
pub const DEFAULT_TOP: usize = 20;
/// Upper bound of `--metrics-top`.
pub const MAX_TOP: usize = 1000;

/// Which workload labels the metrics carry (`--metrics-labels`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LabelChoice {
    pub cgroup: bool,
    pub container: bool,
    pub pod: bool,
}

impl LabelChoice {
    /// A comma-separated subset of `cgroup,container,pod` (one-sentence error otherwise).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut c = LabelChoice::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "cgroup" => c.cgroup = true,
                "container" => c.container = true,
                "pod" => c.pod = true,
                other => {
                    return Err(format!(
                        "unknown metric label {other:?} (expected a comma list of cgroup, container, pod)"
                    ))
                }
            }
        }
        if !c.any() {
            return Err("empty list of metric labels (expected cgroup, container, pod)".into());
        }
        Ok(c)
    }

    /// True if at least one label is chosen.
    pub fn any(self) -> bool {
        self.cgroup || self.container || self.pod
    }

    /// The chosen values of a workload (unchosen ones empty, ignored by comparisons).
    fn values(self, w: Option<&Workload>) -> [&str; 3] {
        fn pick(on: bool, v: Option<&str>) -> &str {
            if on {
                v.unwrap_or("")
            } else {
                ""
            }
        }
        [
            pick(self.cgroup, w.map(|w| w.cgroup.as_str())),
            pick(self.container, w.and_then(|w| w.container.as_deref())),
            pick(self.pod, w.and_then(|w| w.pod.as_deref())),
        ]
    }

    fn labels(self, v: [&str; 3]) -> WorkloadLabels {
        let on = |b: bool, s: &str| b.then(|| Escaped::new(s));
        WorkloadLabels(Some(Arc::new(Values {
            cgroup: on(self.cgroup, v[0]),
            container: on(self.container, v[1]),
            pod: on(self.pod, v[2]),
        })))
    }
}

/// The workload labels of one series; the default carries none (labels off).
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct WorkloadLabels(Option<Arc<Values>>);

/// A `None` field is a label not chosen.
#[derive(Debug, Hash, PartialEq, Eq)]
struct Values {
    cgroup: Option<Escaped>,
    container: Option<Escaped>,
    pod: Option<Escaped>,
}

impl EncodeLabelSet for WorkloadLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let Some(v) = &self.0 else {
            return Ok(());
        };
        for (key, value) in [
            ("cgroup", &v.cgroup),
            ("container", &v.container),
            ("pod", &v.pod),
        ] {
            if let Some(value) = value {
                prometheus_client::encoding::EncodeLabel::encode(
                    &(key, value),
                    encoder.encode_label(),
                )?;
            }
        }
        Ok(())
    }
}

/// The label set of a process's workload, as [`LabelSelector::select`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    pub labels: WorkloadLabels,
    /// First use of this label set: its fixed series are to be created (at zero).
    pub new: bool,
}

impl Selected {
    /// A label set used before.
    #[cfg(test)]
    pub fn old(labels: WorkloadLabels) -> Self {
        Selected { labels, new: false }
    }
}

/// The admitted label sets (at most `top`) and the `other` one.
#[derive(Debug)]
pub struct LabelSelector {
    choice: LabelChoice,
    top: usize,
    /// By a hash of the chosen values; the values themselves for the comparison.
    admitted: HashMap<u64, Vec<([String; 3], WorkloadLabels)>>,
    count: usize,
    other: WorkloadLabels,
    other_used: bool,
}

impl LabelSelector {
    /// Labels `choice`, at most `top` label sets besides `other` (at least 1).
    pub fn new(choice: LabelChoice, top: usize) -> Self {
        LabelSelector {
            choice,
            top: top.clamp(1, MAX_TOP),
            admitted: HashMap::new(),
            count: 0,
            other: choice.labels(["other"; 3]),
            other_used: false,
        }
    }

    /// Label sets admitted so far (not counting `other`).
    #[cfg(test)]
    pub fn admitted(&self) -> usize {
        self.count
    }

    fn key(v: [&str; 3]) -> u64 {
        // Deterministic (SipHash with zero keys): the same values hash alike for the whole run.
        let mut h = std::hash::DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    /// The label set of an admitted workload, or `other` (never admits: for gauges).
    pub fn lookup(&self, w: Option<&Workload>) -> WorkloadLabels {
        let v = self.choice.values(w);
        self.find(v).unwrap_or_else(|| self.other.clone())
    }

    fn find(&self, v: [&str; 3]) -> Option<WorkloadLabels> {
        self.admitted
            .get(&Self::key(v))?
            .iter()
            .find(|(have, _)| have.iter().zip(v).all(|(a, b)| a == b))
            .map(|(_, l)| l.clone())
    }

    /// The label set to count an act of a process with workload `w` under: its own if admitted
    /// (admitting it while there is room), else `other`.
    pub fn select(&mut self, w: Option<&Workload>) -> Selected {
        let v = self.choice.values(w);
        if let Some(labels) = self.find(v) {
            return Selected { labels, new: false };
        }
        if self.count < self.top {
            let labels = self.choice.labels(v);
            self.admitted
                .entry(Self::key(v))
                .or_default()
                .push((v.map(str::to_string), labels.clone()));
            self.count += 1;
            return Selected { labels, new: true };
        }
        let new = !self.other_used;
        self.other_used = true;
        Selected {
            labels: self.other.clone(),
            new,
        }
    }
}

/// A metric family with workload labels when they are on, one plain series when they are off
/// (an empty label set would be written `name{}`).
#[derive(Debug)]
pub enum MaybeLabeled<M> {
    Plain(M),
    Labeled(Family<WorkloadLabels, M, fn() -> M>),
}

impl<M> MaybeLabeled<M>
where
    M: Clone + EncodeMetric + TypedMetric + std::fmt::Debug + Send + Sync + 'static,
{
    /// Registers `name` in `registry`, labeled if `labeled`; `make` builds a series.
    pub fn register(
        registry: &mut Registry,
        name: &str,
        help: String,
        unit: Option<Unit>,
        labeled: bool,
        make: fn() -> M,
    ) -> Self {
        fn add(r: &mut Registry, name: &str, help: String, unit: Option<Unit>, m: impl Metric) {
            match unit {
                Some(u) => r.register_with_unit(name, help, u, m),
                None => r.register(name, help, m),
            }
        }
        if labeled {
            let family = Family::new_with_constructor(make);
            add(registry, name, help, unit, family.clone());
            MaybeLabeled::Labeled(family)
        } else {
            let m = make();
            add(registry, name, help, unit, m.clone());
            MaybeLabeled::Plain(m)
        }
    }

    /// The series of label set `w` (the one series when unlabeled), created on first use.
    pub fn get(&self, w: &WorkloadLabels) -> M {
        match self {
            MaybeLabeled::Plain(m) => m.clone(),
            MaybeLabeled::Labeled(f) => f.get_or_create(w).clone(),
        }
    }
}
