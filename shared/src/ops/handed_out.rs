//! When the records this process handed out were published, so an acknowledgement is timed end
//! to end without reading its record back. Only figures depend on it: a record handed out by
//! another process (or forgotten here) is read from the log instead.

use std::{collections::HashMap, mem, sync::Mutex};

use crate::domain::{MessageId, Timestamp};

/// Records remembered per generation; two generations are kept.
const GENERATION: usize = 50_000;

/// Publish times of handed-out records: newest generation first, the older one dropped when
/// the newest fills, so memory stays bounded and recent deliveries are remembered.
#[derive(Debug, Default)]
pub(super) struct HandedOut(Mutex<[HashMap<MessageId, Timestamp>; 2]>);

impl HandedOut {
    pub(super) fn remember(&self, id: MessageId, published_at: Timestamp) {
        let mut generations = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if generations[0].len() >= GENERATION {
            generations[1] = mem::take(&mut generations[0]);
        }
        generations[0].insert(id, published_at);
    }

    /// The publish time of a handed-out record, forgetting it.
    pub(super) fn take(&self, id: &MessageId) -> Option<Timestamp> {
        let mut generations = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let [newest, older] = &mut *generations;
        newest.remove(id).or_else(|| older.remove(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(offset: u64) -> MessageId {
        MessageId { queue_id: 1, partition: 0, offset }
    }

    #[test]
    fn remembers_until_taken_and_forgets_the_oldest_generation() {
        let handed = HandedOut::default();
        handed.remember(id(0), Timestamp(5));
        assert_eq!(handed.take(&id(0)), Some(Timestamp(5)));
        assert_eq!(handed.take(&id(0)), None);
        for offset in 0..2 * GENERATION as u64 + 1 {
            handed.remember(id(offset), Timestamp(offset as i64));
        }
        assert_eq!(handed.take(&id(0)), None, "the oldest generation is dropped");
        assert_eq!(handed.take(&id(GENERATION as u64)), Some(Timestamp(GENERATION as i64)));
        assert_eq!(handed.take(&id(2 * GENERATION as u64)), Some(Timestamp(2 * GENERATION as i64)));
    }
}
