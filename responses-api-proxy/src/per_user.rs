//! Per-local-user counts with a cap: how many reads of abandoned responses (`body.rs`) and how
//! many WebSocket sessions (`ws.rs`) one uid holds at once. A slot is given back when dropped.

use std::collections::HashMap;
use std::sync::Mutex;

/// Counts per uid (a `static`: `const`-constructible).
#[derive(Debug)]
pub struct PerUser(Mutex<Option<HashMap<u32, usize>>>);

/// One of a uid's slots in a [`PerUser`]; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    of: &'static PerUser,
    uid: u32,
}

impl Default for PerUser {
    fn default() -> Self {
        Self::new()
    }
}

impl PerUser {
    pub const fn new() -> Self {
        PerUser(Mutex::new(None))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashMap<u32, usize>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for `uid`, unless it already holds `cap`.
    pub fn take(&'static self, uid: u32, cap: usize) -> Option<Slot> {
        let mut g = self.lock();
        let n = g.get_or_insert_with(HashMap::new).entry(uid).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Slot { of: self, uid })
    }

    /// Slots `uid` holds now.
    pub fn count(&self, uid: u32) -> usize {
        self.lock()
            .as_ref()
            .and_then(|m| m.get(&uid))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut g = self.of.lock();
        if let Some(m) = g.as_mut() {
            if let Some(n) = m.get_mut(&self.uid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.uid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_holds_at_most_cap_and_a_dropped_slot_comes_back() {
        static COUNTS: PerUser = PerUser::new();
        let a: Vec<Slot> = (0..2).filter_map(|_| COUNTS.take(7, 2)).collect();
        assert_eq!(a.len(), 2);
        assert!(COUNTS.take(7, 2).is_none());
        assert!(COUNTS.take(8, 2).is_some(), "another uid has its own count");
        drop(a);
        assert_eq!(COUNTS.count(7), 0);
        assert!(COUNTS.take(7, 2).is_some());
    }
}
