//! The order in which a link takes waiting messages of different classes: alarms strictly first,
//! the other classes by weight (smooth weighted round robin), so a long bulk queue never delays
//! an alarm and never starves either.

/// Remembers each weighted class's credit between rounds, so shares hold over time and not just
/// within one round.
#[derive(Debug, Default)]
pub struct ClassPicker {
    credit: [i64; 4],
}

impl ClassPicker {
    /// Takes up to `limit` ids from `waiting[p]` (priority p = 0 alarm … 3 bulk, each oldest first).
    /// `weights[p]` is ignored for p = 0.
    pub fn pick(
        &mut self,
        mut waiting: [Vec<u64>; 4],
        weights: [u32; 4],
        limit: usize,
    ) -> Vec<u64> {
        let mut picked: Vec<u64> = waiting[0].drain(..).take(limit).collect();
        let mut next = [0usize; 4];
        while picked.len() < limit {
            let open: Vec<usize> = (1..4).filter(|&p| next[p] < waiting[p].len()).collect();
            if open.is_empty() {
                break;
            }
            let total: i64 = open.iter().map(|&p| i64::from(weights[p].max(1))).sum();
            for &p in &open {
                self.credit[p] += i64::from(weights[p].max(1));
            }
            let Some(&best) = open
                .iter()
                .max_by_key(|&&p| (self.credit[p], std::cmp::Reverse(p)))
            else {
                break;
            };
            self.credit[best] -= total;
            picked.push(waiting[best][next[best]]);
            next[best] += 1;
        }
        // Credits of classes with nothing waiting must not pile up into a burst later.
        for p in 1..4 {
            if next[p] >= waiting[p].len() {
                self.credit[p] = self.credit[p].min(0);
            }
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(base: u64, n: u64) -> Vec<u64> {
        (base..base + n).collect()
    }

    #[test]
    fn alarms_go_first_whatever_else_waits() {
        let mut picker = ClassPicker::default();
        let picked = picker.pick(
            [ids(900, 2), ids(100, 50), ids(200, 50), ids(300, 50)],
            [0, 6, 3, 1],
            4,
        );
        assert_eq!(&picked[..2], &[900, 901]);
        assert_eq!(picked.len(), 4);
    }

    #[test]
    fn weighted_classes_share_by_weight_over_rounds() {
        let mut picker = ClassPicker::default();
        let mut counts = [0usize; 4];
        for _ in 0..100 {
            for id in picker.pick(
                [vec![], ids(100, 50), ids(200, 50), ids(300, 50)],
                [0, 6, 3, 1],
                10,
            ) {
                counts[(id / 100) as usize] += 1;
            }
        }
        // 1000 picks at 6:3:1.
        assert_eq!(counts[1..], [600, 300, 100]);
    }

    #[test]
    fn bulk_gets_the_whole_link_when_alone_and_is_never_starved() {
        let mut picker = ClassPicker::default();
        assert_eq!(
            picker.pick([vec![], vec![], vec![], ids(300, 5)], [0, 6, 3, 1], 3),
            [300, 301, 302]
        );
        let picked = picker.pick(
            [vec![], ids(100, 100), vec![], ids(300, 100)],
            [0, 6, 3, 1],
            14,
        );
        assert_eq!(picked.iter().filter(|id| **id >= 300).count(), 2);
    }
}
