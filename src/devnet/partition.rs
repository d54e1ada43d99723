//! A partition of the devnet into groups: nodes in different groups keep each other away
//! (`P2p::set_blocked`) until `heal`.

use std::collections::BTreeSet;
use std::fmt;

/// Groups of node numbers; every node is in exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    groups: Vec<BTreeSet<usize>>,
}

impl Partition {
    /// The groups the user named, plus one more group of every node in `all` left unnamed.
    /// Refuses unknown or repeated nodes, and a "partition" that leaves a single group.
    pub fn new(named: &[Vec<usize>], all: &[usize]) -> Result<Partition, String> {
        let mut seen = BTreeSet::new();
        let mut groups = Vec::with_capacity(named.len() + 1);
        for g in named {
            let mut group = BTreeSet::new();
            for &n in g {
                if !all.contains(&n) {
                    return Err(format!("no node {n} (nodes are 1 to {})", all.len()));
                }
                if !seen.insert(n) {
                    return Err(format!("node {n} is named twice"));
                }
                group.insert(n);
            }
            groups.push(group);
        }
        let rest: BTreeSet<usize> = all.iter().copied().filter(|n| !seen.contains(n)).collect();
        if !rest.is_empty() {
            groups.push(rest);
        }
        if groups.len() < 2 {
            return Err("a partition needs at least two groups, e.g. partition 1 / 2 3".into());
        }
        Ok(Partition { groups })
    }

    /// The groups, in order.
    pub fn groups(&self) -> &[BTreeSet<usize>] {
        &self.groups
    }

    /// The index of `n`'s group.
    pub fn group_of(&self, n: usize) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(&n))
    }

    /// Whether `a` and `b` must stay apart.
    pub fn separated(&self, a: usize, b: usize) -> bool {
        self.group_of(a) != self.group_of(b)
    }

    /// Puts a node added during the partition into the first group.
    pub fn join_first(&mut self, n: usize) {
        if let Some(g) = self.groups.first_mut() {
            g.insert(n);
        }
    }
}

impl fmt::Display for Partition {
    /// `1 / 2 3`, as the command takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.groups.iter().enumerate() {
            if i > 0 {
                f.write_str(" / ")?;
            }
            let names: Vec<String> = g.iter().map(usize::to_string).collect();
            f.write_str(&names.join(" "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_nodes_form_one_more_group() {
        let p = Partition::new(&[vec![1]], &[1, 2, 3, 4]).unwrap();
        assert_eq!(p.to_string(), "1 / 2 3 4");
        assert!(p.separated(1, 3) && !p.separated(2, 4));
        let mut p = Partition::new(&[vec![3, 1], vec![2]], &[1, 2, 3]).unwrap();
        assert_eq!(p.to_string(), "1 3 / 2");
        p.join_first(4);
        assert_eq!(p.group_of(4), Some(0));
    }

    #[test]
    fn bad_partitions_are_refused() {
        assert!(Partition::new(&[vec![1, 2, 3]], &[1, 2, 3]).unwrap_err().contains("two groups"));
        assert!(Partition::new(&[vec![1], vec![1, 2]], &[1, 2, 3]).unwrap_err().contains("twice"));
        assert!(Partition::new(&[vec![9]], &[1, 2, 3]).unwrap_err().contains("no node 9"));
    }
}
