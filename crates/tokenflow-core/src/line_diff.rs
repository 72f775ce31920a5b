//! A line diff of two texts (two versions of a flow, docs/flows.md "Editing flows in the
//! browser"): Myers' O((N+M)·D) algorithm ("An O(ND) Difference Algorithm and Its Variations",
//! 1986), written here rather than taken from a crate because the bound matters more than speed.
//!
//! The bound: lines common to both ends are taken off first; the rest is diffed with at most
//! [`MAX_EDITS`] edits and at most [`MAX_WORK`] line comparisons (lines are compared as numbers,
//! each distinct line interned once). Two texts that differ more than that get a correct but
//! coarse diff: the changed middle shown removed, then added. So a diff of two flows at the size
//! limit (1 MiB each) costs a bounded time and a few MiB of memory whatever they hold.

use std::collections::HashMap;

/// The most edits (added plus removed lines) a fine diff looks for.
pub const MAX_EDITS: usize = 1000;
/// The most line comparisons a fine diff makes (about (N+M)·D).
pub const MAX_WORK: usize = 10_000_000;

/// What became of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// In both texts.
    Same,
    /// Only in the old text.
    Removed,
    /// Only in the new text.
    Added,
}

/// One line of a diff, with its 1-based number in the old and the new text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine<'a> {
    pub change: Change,
    pub old_line: Option<usize>,
    pub new_line: Option<usize>,
    pub text: &'a str,
}

/// The lines of `old` and `new` (split as [`str::lines`] does), each marked same, removed or
/// added, in the order of the texts.
pub fn diff_lines<'a>(old: &'a str, new: &'a str) -> Vec<DiffLine<'a>> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (mid_a, mid_b) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);

    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut intern = |line: &'a str| {
        let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        *ids.entry(line).or_insert(next)
    };
    let ia: Vec<u32> = mid_a.iter().map(|l| intern(l)).collect();
    let ib: Vec<u32> = mid_b.iter().map(|l| intern(l)).collect();
    let max_edits = MAX_EDITS.min(MAX_WORK / (ia.len() + ib.len()).max(1));
    let ops = myers(&ia, &ib, max_edits).unwrap_or_else(|| {
        let mut coarse = vec![Change::Removed; ia.len()];
        coarse.extend(std::iter::repeat_n(Change::Added, ib.len()));
        coarse
    });

    let mut out = Vec::with_capacity(prefix + suffix + ops.len());
    let (mut i, mut j) = (0, 0);
    let mut push = |change: Change, i: &mut usize, j: &mut usize| {
        let (old_line, new_line, text) = match change {
            Change::Same => (Some(*i + 1), Some(*j + 1), a[*i]),
            Change::Removed => (Some(*i + 1), None, a[*i]),
            Change::Added => (None, Some(*j + 1), b[*j]),
        };
        if change != Change::Added {
            *i += 1;
        }
        if change != Change::Removed {
            *j += 1;
        }
        out.push(DiffLine {
            change,
            old_line,
            new_line,
            text,
        });
    };
    let middle = ops.into_iter();
    for change in std::iter::repeat_n(Change::Same, prefix)
        .chain(middle)
        .chain(std::iter::repeat_n(Change::Same, suffix))
    {
        push(change, &mut i, &mut j);
    }
    out
}

/// The shortest edit script from `a` to `b`, or `None` when it needs more than `max_edits`.
/// Keeps the furthest-reaching x of every diagonal for each edit count, to walk back from the end.
fn myers(a: &[u32], b: &[u32], max_edits: usize) -> Option<Vec<Change>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max_d = max_edits.min(a.len() + b.len()) as isize;
    let off = max_d + 1;
    let mut v = vec![0_isize; 2 * max_d as usize + 3];
    // trace[d]: v over the diagonals -d..=d before the pass with d edits.
    let mut trace: Vec<Vec<isize>> = Vec::new();
    for d in 0..=max_d {
        trace.push(v[(off - d) as usize..=(off + d) as usize].to_vec());
        for k in (-d..=d).step_by(2) {
            let down = k == -d || (k != d && v[(off + k - 1) as usize] < v[(off + k + 1) as usize]);
            let mut x = if down {
                v[(off + k + 1) as usize]
            } else {
                v[(off + k - 1) as usize] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[(off + k) as usize] = x;
            if x >= n && y >= m {
                return Some(walk_back(&trace, n, m));
            }
        }
    }
    None
}

/// The edit script, from the end back to the start through `trace`.
fn walk_back(trace: &[Vec<isize>], n: isize, m: isize) -> Vec<Change> {
    let mut ops = Vec::new();
    let (mut x, mut y) = (n, m);
    for (d, before) in trace.iter().enumerate().rev() {
        let d = d as isize;
        if d == 0 {
            ops.extend(std::iter::repeat_n(Change::Same, x as usize));
            break;
        }
        let k = x - y;
        let at = |k: isize| before[(k + d) as usize];
        let prev_k = if k == -d || (k != d && at(k - 1) < at(k + 1)) {
            k + 1
        } else {
            k - 1
        };
        let prev_x = at(prev_k);
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            ops.push(Change::Same);
            x -= 1;
            y -= 1;
        }
        ops.push(if x == prev_x {
            Change::Added
        } else {
            Change::Removed
        });
        x = prev_x;
        y = prev_y;
    }
    ops.reverse();
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(old: &str, new: &str) -> String {
        diff_lines(old, new)
            .iter()
            .map(|line| {
                let mark = match line.change {
                    Change::Same => ' ',
                    Change::Removed => '-',
                    Change::Added => '+',
                };
                format!("{mark}{}\n", line.text)
            })
            .collect()
    }

    /// Applying the diff gives back both texts.
    fn check_sides(old: &str, new: &str) {
        let diff = diff_lines(old, new);
        let side = |keep: Change| -> Vec<&str> {
            diff.iter()
                .filter(|l| l.change == Change::Same || l.change == keep)
                .map(|l| l.text)
                .collect()
        };
        assert_eq!(side(Change::Removed), old.lines().collect::<Vec<_>>());
        assert_eq!(side(Change::Added), new.lines().collect::<Vec<_>>());
    }

    #[test]
    fn a_changed_line_is_removed_then_added_with_both_line_numbers() {
        let diff = diff_lines("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(render("a\nb\nc\n", "a\nB\nc\n"), " a\n-b\n+B\n c\n");
        assert_eq!(
            (diff[1].old_line, diff[1].new_line),
            (Some(2), None),
            "removed: its old number"
        );
        assert_eq!((diff[2].old_line, diff[2].new_line), (None, Some(2)));
        assert_eq!((diff[3].old_line, diff[3].new_line), (Some(3), Some(3)));
    }

    #[test]
    fn the_diff_is_shortest_and_keeps_both_texts() {
        // Myers' own example: ABCABBA → CBABAC takes 5 edits.
        let (old, new) = ("A\nB\nC\nA\nB\nB\nA", "C\nB\nA\nB\nA\nC");
        let edits = diff_lines(old, new)
            .iter()
            .filter(|l| l.change != Change::Same)
            .count();
        assert_eq!(edits, 5);
        for (old, new) in [
            (old, new),
            ("", "x\ny"),
            ("x\ny", ""),
            ("", ""),
            ("same\n", "same\n"),
            ("a\nb\nc\nd\ne", "e\nd\nc\nb\na"),
            ("k: 1\nk: 1\nk: 2", "k: 2\nk: 1\nk: 1\nk: 1"),
        ] {
            check_sides(old, new);
        }
        assert_eq!(render("", "x\ny"), "+x\n+y\n");
    }

    #[test]
    fn texts_beyond_the_edit_bound_get_a_coarse_but_correct_diff() {
        let old: String = (0..3000).map(|i| format!("old {i}\n")).collect();
        let new: String = (0..3000).map(|i| format!("new {i}\n")).collect();
        let (old, new) = (format!("head\n{old}tail\n"), format!("head\n{new}tail\n"));
        check_sides(&old, &new);
        let diff = diff_lines(&old, &new);
        assert_eq!(diff.len(), 6002);
        assert_eq!(diff[0].change, Change::Same);
        assert!(diff[1..3001].iter().all(|l| l.change == Change::Removed));
        assert!(diff[3001..6001].iter().all(|l| l.change == Change::Added));
    }
}
