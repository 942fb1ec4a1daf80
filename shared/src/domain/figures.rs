//! What happened to a queue in one stretch of time: counts and latency histograms. Figures of
//! any processes and any stretches merge by adding, so percentiles over a range come from the
//! merged histogram, never from averaging percentiles.

use hdrhistogram::{
    Histogram,
    serialization::{Deserializer, Serializer, V2Serializer},
};

/// Significant digits the histograms keep: a recorded value reads back within 1%.
const SIGNIFICANT_DIGITS: u8 = 2;
/// Relative error of a percentile read from the histograms.
pub const RELATIVE_ERROR: f64 = 0.01;
/// Longest latency kept apart (30 days in microseconds); longer ones count as this.
const MAX_MICROS: u64 = 30 * 24 * 3_600 * 1_000_000;
/// First byte of the encoding.
const VERSION: u8 = 1;

macro_rules! named {
    ($(#[$doc:meta])* $ty:ident { $($(#[$vdoc:meta])* $variant:ident => $name:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $ty { $($(#[$vdoc])* $variant),* }

        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];

            /// The name it is stored and answered under.
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some($ty::$variant),)* _ => None }
            }
        }
    };
}

named!(
    /// What is counted.
    Count {
        Published => "published",
        Consumed => "consumed",
        Redelivered => "redelivered",
        Acknowledged => "acknowledged",
        Rejected => "rejected",
        Requeued => "requeued",
        DeadLettered => "dead_lettered",
        Expired => "expired",
        PushAttempts => "push_attempts",
        PushFailures => "push_failures",
        PublishCalls => "publish_calls",
        PublishClientErrors => "publish_client_errors",
        PublishServerErrors => "publish_server_errors",
        ConsumeCalls => "consume_calls",
        ConsumeClientErrors => "consume_client_errors",
        ConsumeServerErrors => "consume_server_errors",
        AcknowledgeCalls => "acknowledge_calls",
        AcknowledgeClientErrors => "acknowledge_client_errors",
        AcknowledgeServerErrors => "acknowledge_server_errors",
        RejectCalls => "reject_calls",
        RejectClientErrors => "reject_client_errors",
        RejectServerErrors => "reject_server_errors",
    }
);

named!(
    /// What is timed.
    Latency {
        /// Making a publish durable.
        Publish => "publish",
        /// A consume call that leased messages, long-poll waiting left out.
        Consume => "consume",
        /// Applying an acknowledgement.
        Acknowledge => "acknowledge",
        /// One push attempt, request to answer.
        Push => "push",
        /// From publish to acknowledgement.
        EndToEnd => "end_to_end",
    }
);

/// The operations whose calls and errors are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Publish,
    Consume,
    Acknowledge,
    Reject,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Publish, Op::Consume, Op::Acknowledge, Op::Reject];

    pub fn name(self) -> &'static str {
        match self {
            Op::Publish => "publish",
            Op::Consume => "consume",
            Op::Acknowledge => "acknowledge",
            Op::Reject => "reject",
        }
    }

    /// Its calls, client errors and server errors.
    pub fn counts(self) -> [Count; 3] {
        match self {
            Op::Publish => [Count::PublishCalls, Count::PublishClientErrors, Count::PublishServerErrors],
            Op::Consume => [Count::ConsumeCalls, Count::ConsumeClientErrors, Count::ConsumeServerErrors],
            Op::Acknowledge => {
                [Count::AcknowledgeCalls, Count::AcknowledgeClientErrors, Count::AcknowledgeServerErrors]
            }
            Op::Reject => [Count::RejectCalls, Count::RejectClientErrors, Count::RejectServerErrors],
        }
    }
}

/// Counts and latency histograms (microseconds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Signed: a count taken back lands in the bucket of its time, maybe after the one it was added to.
    counts: [i64; Count::ALL.len()],
    latencies: [Option<Histogram<u64>>; Latency::ALL.len()],
}

/// A latency distribution read from merged figures, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Distribution {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Figures {
    pub fn add(&mut self, count: Count, n: u64) {
        self.counts[count as usize] += n as i64;
    }

    /// Adds a signed change (a negative one takes back earlier counts).
    pub fn change(&mut self, count: Count, by: i64) {
        self.counts[count as usize] += by;
    }

    pub fn count(&self, count: Count) -> u64 {
        self.counts[count as usize].max(0) as u64
    }

    pub fn record(&mut self, latency: Latency, took: std::time::Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_MICROS);
        let h = self.histogram(latency);
        // Auto-resizing: a value is refused only past what a histogram can hold at all.
        if h.record(micros).is_err() {
            h.saturating_record(micros);
        }
    }

    /// The distribution of one latency.
    pub fn distribution(&self, latency: Latency) -> Distribution {
        let Some(h) = self.latencies[latency as usize].as_ref().filter(|h| !h.is_empty()) else {
            return Distribution::default();
        };
        let ms = |micros: u64| h.highest_equivalent(micros) as f64 / 1000.0;
        Distribution {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }

    /// Adds another's counts and histograms to these.
    pub fn merge(&mut self, other: &Figures) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        for (i, theirs) in other.latencies.iter().enumerate() {
            if let Some(theirs) = theirs {
                // Both auto-resize, so adding never fails for want of range.
                let _ = self.histogram(Latency::ALL[i]).add(theirs);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&n| n == 0) && self.latencies.iter().flatten().all(Histogram::is_empty)
    }

    /// Bytes that [`Figures::decode`] reads back: each count and histogram under its name, so
    /// files written by a version that knows more or fewer names still read.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        let counts: Vec<_> = Count::ALL.iter().filter(|c| self.counts[**c as usize] != 0).collect();
        out.push(counts.len() as u8);
        for &c in counts {
            put_name(&mut out, c.name());
            out.extend_from_slice(&self.counts[c as usize].to_le_bytes());
        }
        let latencies: Vec<_> =
            Latency::ALL.iter().filter_map(|l| Some((l, self.latencies[*l as usize].as_ref()?))).collect();
        out.push(latencies.len() as u8);
        for (l, h) in latencies {
            put_name(&mut out, l.name());
            let mut bytes = Vec::new();
            // Serializing into memory cannot fail.
            let _ = V2Serializer::new().serialize(h, &mut bytes);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Reads [`Figures::encode`]'s bytes; `None` when they are not such bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.take(1)?[0] != VERSION {
            return None;
        }
        let mut figures = Figures::default();
        for _ in 0..r.take(1)?[0] {
            let name = r.name()?;
            let n = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
            if let Some(c) = Count::from_name(name) {
                figures.counts[c as usize] = n;
            }
        }
        for _ in 0..r.take(1)?[0] {
            let name = r.name()?;
            let len = u32::from_le_bytes(r.take(4)?.try_into().ok()?) as usize;
            let mut body = r.take(len)?;
            let mut h: Histogram<u64> = Deserializer::new().deserialize(&mut body).ok()?;
            h.auto(true);
            if let Some(l) = Latency::from_name(name) {
                figures.latencies[l as usize] = Some(h);
            }
        }
        r.0.is_empty().then_some(figures)
    }

    fn histogram(&mut self, latency: Latency) -> &mut Histogram<u64> {
        self.latencies[latency as usize].get_or_insert_with(|| {
            // Auto-resizing from the smallest range: memory follows the largest value recorded.
            let mut h = Histogram::new(SIGNIFICANT_DIGITS).expect("2 significant digits are allowed");
            h.auto(true);
            h
        })
    }
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn name(&mut self) -> Option<&'a str> {
        let len = self.take(1)?[0] as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn figures_read_back_and_merge_by_adding() {
        let mut a = Figures::default();
        a.add(Count::Published, 3);
        for ms in 1..=100 {
            a.record(Latency::Publish, Duration::from_millis(ms));
        }
        let mut b = Figures::decode(&a.encode()).expect("reads back");
        assert_eq!(a, b);
        b.merge(&a);
        assert_eq!(b.count(Count::Published), 6);
        let d = b.distribution(Latency::Publish);
        assert_eq!(d.count, 200);
        assert!((d.p95_ms - 95.0).abs() <= 95.0 * RELATIVE_ERROR, "{d:?}");
        assert!((d.p99_ms - 99.0).abs() <= 99.0 * RELATIVE_ERROR, "{d:?}");
        assert_eq!(b.distribution(Latency::Push), Distribution::default());
    }

    #[test]
    fn a_percentile_of_merged_figures_is_not_an_average_of_percentiles() {
        let (mut fast, mut slow) = (Figures::default(), Figures::default());
        for _ in 0..99 {
            fast.record(Latency::Consume, Duration::from_millis(1));
        }
        slow.record(Latency::Consume, Duration::from_secs(10));
        fast.merge(&slow);
        let d = fast.distribution(Latency::Consume);
        assert!(d.p95_ms < 1.1, "{d:?}");
        assert!(d.max_ms > 9_900.0, "{d:?}");
    }

    #[test]
    fn other_bytes_are_refused_and_unknown_names_skipped() {
        assert_eq!(Figures::decode(&[]), None);
        assert_eq!(Figures::decode(&[9, 0, 0]), None);
        let mut bytes = vec![VERSION, 1];
        put_name(&mut bytes, "from_a_later_version");
        bytes.extend_from_slice(&7u64.to_le_bytes());
        bytes.push(0);
        assert_eq!(Figures::decode(&bytes), Some(Figures::default()));
    }
}
