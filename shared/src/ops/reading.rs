//! Reading leased records back from the log: one range read per run of
//! consecutive offsets of a partition, not one read per record.

use super::Service;
use crate::{
    error::Result,
    ports::{Lease, QueueId, ReadLimit, Record},
};

impl Service {
    /// The records of `leases`, in their order; `None` where retention removed one.
    pub(super) async fn read_leased(&self, queue: QueueId, leases: &[Lease]) -> Result<Vec<Option<Record>>> {
        let positions: Vec<(u32, u64)> = leases.iter().map(|l| (l.partition, l.offset)).collect();
        self.read_at(queue, &positions).await
    }

    /// The records at `(partition, offset)` positions, in their order; `None` where retention removed one.
    pub(super) async fn read_at(&self, queue: QueueId, positions: &[(u32, u64)]) -> Result<Vec<Option<Record>>> {
        let mut wanted: Vec<(u32, u64, usize)> =
            positions.iter().enumerate().map(|(i, (partition, offset))| (*partition, *offset, i)).collect();
        wanted.sort_unstable();
        let mut out: Vec<Option<Record>> = vec![None; positions.len()];
        for run in runs(&wanted) {
            let (partition, first, _) = run[0];
            let limit = ReadLimit { records: run.len() as u32, bytes: u64::MAX };
            let mut found = self.log.read_range(queue, partition, first, limit).await?.into_iter().peekable();
            for &(_, offset, index) in run {
                while found.next_if(|(o, _)| *o < offset).is_some() {}
                out[index] = found.next_if(|(o, _)| *o == offset).map(|(_, r)| r);
            }
        }
        Ok(out)
    }
}

/// Splits sorted `(partition, offset, index)` into runs of consecutive offsets of one partition.
fn runs(sorted: &[(u32, u64, usize)]) -> Vec<&[(u32, u64, usize)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=sorted.len() {
        let breaks = i == sorted.len() || sorted[i].0 != sorted[i - 1].0 || sorted[i].1 != sorted[i - 1].1 + 1;
        if breaks {
            out.push(&sorted[start..i]);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_break_at_gaps_and_partitions() {
        let sorted = [(0, 1, 0), (0, 2, 1), (0, 4, 2), (1, 5, 3), (1, 6, 4)];
        let lengths: Vec<usize> = runs(&sorted).iter().map(|r| r.len()).collect();
        assert_eq!(lengths, [2, 1, 2]);
        assert!(runs(&[]).is_empty());
    }
}
