//! The order-statistic tree: runs in document order, in leaves of a B-tree
//! whose inner nodes keep, per child, the sums below it (skeleton elements,
//! visible elements, visible UTF-16 units, runs). Finding a position by
//! either index unit, or the position of a leaf's run, is one descent or
//! one climb: O(log n). Nodes live in arenas and link by index. An
//! [`IdIndex`] maps every element id to its leaf.

use super::chunk::Chunk;
use super::index::IdIndex;
use super::run::{ElemId, Run};

const NONE: u32 = u32::MAX;
/// Most runs per leaf.
const LEAF_MAX: usize = 32;
/// Most children per inner node.
const NODE_MAX: usize = 16;

/// What a subtree holds.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Sum {
    /// Elements, deleted ones included (the skeleton).
    pub elems: u64,
    /// Visible elements (code points for text).
    pub vis: u64,
    /// Visible UTF-16 units.
    pub utf16: u64,
    /// Runs.
    pub runs: u64,
}

impl Sum {
    #[inline]
    fn of<C: Chunk>(r: &Run<C>) -> Sum {
        Sum {
            elems: r.len as u64,
            vis: r.vis() as u64,
            utf16: r.utf16() as u64,
            runs: 1,
        }
    }

    #[inline]
    fn add(&mut self, o: &Sum) {
        self.elems = self.elems.wrapping_add(o.elems);
        self.vis = self.vis.wrapping_add(o.vis);
        self.utf16 = self.utf16.wrapping_add(o.utf16);
        self.runs = self.runs.wrapping_add(o.runs);
    }

    #[inline]
    fn sub(&mut self, o: &Sum) {
        self.elems = self.elems.wrapping_sub(o.elems);
        self.vis = self.vis.wrapping_sub(o.vis);
        self.utf16 = self.utf16.wrapping_sub(o.utf16);
        self.runs = self.runs.wrapping_sub(o.runs);
    }
}

#[derive(Clone)]
struct Leaf<C> {
    runs: Vec<Run<C>>,
    /// The sum of `runs`.
    sum: Sum,
    parent: u32,
    next: u32,
}

#[derive(Clone, Debug)]
struct Node {
    kids: Vec<u32>,
    sums: Vec<Sum>,
    parent: u32,
    /// The kids are leaves.
    leafy: bool,
}

/// A place in the tree: run `run` of leaf `leaf`, element `off` of it.
/// `run == len` (with `off == 0`) is the end of the leaf.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cursor {
    /// The leaf.
    pub leaf: u32,
    /// The run in it.
    pub run: usize,
    /// The element in the run.
    pub off: u32,
}

/// Index units.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Metric {
    /// Visible elements (code points).
    Vis,
    /// Visible UTF-16 units.
    Utf16,
}

impl Metric {
    #[inline]
    fn of(self, s: &Sum) -> u64 {
        match self {
            Metric::Vis => s.vis,
            Metric::Utf16 => s.utf16,
        }
    }
}

/// Runs in document order, with sums and the id index.
#[derive(Clone)]
pub struct Tree<C> {
    leaves: Vec<Leaf<C>>,
    nodes: Vec<Node>,
    root: u32,
    /// 0 when the root is a leaf.
    height: u32,
    first: u32,
    last: u32,
    index: IdIndex,
}

impl<C: Chunk> std::fmt::Debug for Tree<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<C: Chunk> Default for Tree<C> {
    fn default() -> Self {
        Tree {
            leaves: vec![Leaf {
                runs: Vec::new(),
                sum: Sum::default(),
                parent: NONE,
                next: NONE,
            }],
            nodes: Vec::new(),
            root: 0,
            height: 0,
            first: 0,
            last: 0,
            index: IdIndex::default(),
        }
    }
}

impl<C: Chunk> Tree<C> {
    /// The sums of the whole tree.
    #[inline]
    pub fn total(&self) -> Sum {
        if self.height == 0 {
            self.leaf_sum(self.root)
        } else {
            let mut s = Sum::default();
            for k in &self.nodes[self.root as usize].sums {
                s.add(k);
            }
            s
        }
    }

    /// True if the tree holds no element.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.height == 0 && self.leaves[self.root as usize].runs.is_empty()
    }

    /// See [`IdIndex::next_present`].
    #[inline]
    pub fn next_present(&self, first: ElemId, per_txn: bool, from: u32, len: u32) -> Option<u32> {
        self.index.next_present(first, per_txn, from, len)
    }

    /// Ranges in the id index.
    pub fn index_ranges(&self) -> usize {
        self.index.ranges()
    }

    #[inline]
    fn leaf_sum(&self, l: u32) -> Sum {
        self.leaves[l as usize].sum
    }

    /// Sums a leaf's runs.
    fn recount(&self, l: u32) -> Sum {
        let mut s = Sum::default();
        for r in &self.leaves[l as usize].runs {
            s.add(&Sum::of(r));
        }
        s
    }

    /// The run at a cursor (which must not be at a leaf's end).
    #[inline]
    pub fn run(&self, c: Cursor) -> &Run<C> {
        &self.leaves[c.leaf as usize].runs[c.run]
    }

    /// Every run, in document order.
    pub fn iter(&self) -> impl Iterator<Item = &Run<C>> + '_ {
        let mut leaf = self.first;
        let mut i = 0usize;
        std::iter::from_fn(move || loop {
            if leaf == NONE {
                return None;
            }
            let l = &self.leaves[leaf as usize];
            if i < l.runs.len() {
                i += 1;
                return Some(&l.runs[i - 1]);
            }
            leaf = l.next;
            i = 0;
        })
    }

    /// The cursor at the start of the document.
    #[inline]
    pub fn start(&self) -> Cursor {
        Cursor {
            leaf: self.first,
            run: 0,
            off: 0,
        }
    }

    /// The cursor at the end of the document.
    #[inline]
    pub fn end(&self) -> Cursor {
        Cursor {
            leaf: self.last,
            run: self.leaves[self.last as usize].runs.len(),
            off: 0,
        }
    }

    /// Moves a cursor at a leaf's end to the next leaf's first run;
    /// `None` at the document's end.
    #[inline]
    pub fn normalize(&self, mut c: Cursor) -> Option<Cursor> {
        loop {
            let l = &self.leaves[c.leaf as usize];
            if c.run < l.runs.len() {
                return Some(c);
            }
            if l.next == NONE {
                return None;
            }
            c = Cursor {
                leaf: l.next,
                run: 0,
                off: 0,
            };
        }
    }

    /// The cursor at the start of the run after the cursor's run.
    #[inline]
    pub fn next_run(&self, c: Cursor) -> Option<Cursor> {
        self.normalize(Cursor {
            leaf: c.leaf,
            run: c.run + 1,
            off: 0,
        })
    }

    /// The cursor just after element `c`.
    #[inline]
    pub fn after(&self, c: Cursor) -> Cursor {
        if c.off + 1 < self.run(c).len {
            Cursor {
                off: c.off + 1,
                ..c
            }
        } else {
            Cursor {
                leaf: c.leaf,
                run: c.run + 1,
                off: 0,
            }
        }
    }

    /// Where element `id` is.
    #[inline]
    pub fn locate(&self, id: ElemId) -> Option<Cursor> {
        let leaf = self.index.get(id)?;
        let runs = &self.leaves.get(leaf as usize)?.runs;
        for (i, r) in runs.iter().enumerate() {
            if let Some(off) = r.offset_of(id) {
                return Some(Cursor { leaf, run: i, off });
            }
        }
        None
    }

    /// The sums of everything before the cursor (elements of its run
    /// before `off` included).
    pub fn before(&self, c: Cursor) -> Sum {
        let l = &self.leaves[c.leaf as usize];
        let mut s = Sum::default();
        for r in &l.runs[..c.run] {
            s.add(&Sum::of(r));
        }
        if c.off > 0 {
            let r = &l.runs[c.run];
            s.elems += c.off as u64;
            if let Some(ch) = &r.content {
                s.vis += c.off as u64;
                s.utf16 += ch.elems_to_utf16(c.off) as u64;
            }
        }
        let mut child = c.leaf;
        let mut p = l.parent;
        while p != NONE {
            let n = &self.nodes[p as usize];
            for (k, sum) in n.kids.iter().zip(&n.sums) {
                if *k == child {
                    break;
                }
                s.add(sum);
            }
            child = p;
            p = n.parent;
        }
        s
    }

    /// The skeleton position of the element at `c`.
    #[inline]
    pub fn pos(&self, c: Cursor) -> u64 {
        self.before(c).elems
    }

    /// The visible run holding unit `at` (in `metric`; the cursor's `off`
    /// counts that unit within the run), with the sums before the run;
    /// `None` if `at` is not below the total.
    pub fn find(&self, mut at: u64, metric: Metric) -> Option<(Cursor, Sum)> {
        let mut acc = Sum::default();
        let mut node = self.root;
        let mut h = self.height;
        while h > 0 {
            let n = &self.nodes[node as usize];
            let mut next = None;
            for (k, s) in n.kids.iter().zip(&n.sums) {
                let m = metric.of(s);
                if at < m {
                    next = Some(*k);
                    break;
                }
                at -= m;
                acc.add(s);
            }
            node = next?;
            h -= 1;
        }
        for (i, r) in self.leaves[node as usize].runs.iter().enumerate() {
            let s = Sum::of(r);
            let m = metric.of(&s);
            if at < m {
                return Some((
                    Cursor {
                        leaf: node,
                        run: i,
                        off: at as u32,
                    },
                    acc,
                ));
            }
            at -= m;
            acc.add(&s);
        }
        None
    }

    /// Adds `add` and takes `sub` from leaf `l`'s sum and its ancestors'.
    #[inline]
    fn bump(&mut self, l: u32, add: Sum, sub: Sum) {
        let lf = &mut self.leaves[l as usize];
        lf.sum.add(&add);
        lf.sum.sub(&sub);
        let mut child = l;
        let mut p = lf.parent;
        while p != NONE {
            let n = &mut self.nodes[p as usize];
            let i = n.kids.iter().position(|k| *k == child).expect("child");
            n.sums[i].add(&add);
            n.sums[i].sub(&sub);
            child = p;
            p = n.parent;
        }
    }

    /// The runs count of leaf `l` went from `before` to now: the delta.
    #[inline]
    fn runs_delta(&self, l: u32, before: usize) -> (u64, u64) {
        let now = self.leaves[l as usize].runs.len();
        if now >= before {
            ((now - before) as u64, 0)
        } else {
            (0, (before - now) as u64)
        }
    }

    /// Inserts `run` before run `i` of `leaf` (merging it with a
    /// neighbour where it can), and indexes its ids.
    pub fn insert(&mut self, leaf: u32, i: usize, mut run: Run<C>) {
        let before = self.leaves[leaf as usize].runs.len();
        let per = run.per_txn && run.len > 1;
        run.per_txn = per;
        let (first, len) = (run.id, run.len);
        let mut add = Sum::of(&run);
        add.runs = 0;
        let runs = &mut self.leaves[leaf as usize].runs;
        let mut run = Some(run);
        if i > 0 {
            if let Some(shape) = runs[i - 1].joins(run.as_ref().expect("run"), true) {
                runs[i - 1].absorb(run.take().expect("run"), shape);
                merge_pair(runs, i - 1);
            }
        }
        if let Some(r) = run {
            if i < runs.len() {
                if let Some(shape) = r.joins(&runs[i], true) {
                    let next = std::mem::replace(&mut runs[i], r);
                    runs[i].absorb(next, shape);
                } else {
                    runs.insert(i, r);
                }
            } else {
                runs.push(r);
            }
        }
        // The run's ids are new to this tree.
        self.index.assign_new(first, len, per, leaf);
        let (up, down) = self.runs_delta(leaf, before);
        add.runs = up;
        self.bump(
            leaf,
            add,
            Sum {
                runs: down,
                ..Sum::default()
            },
        );
        if self.leaves[leaf as usize].runs.len() > LEAF_MAX {
            self.split_leaf(leaf);
        }
    }

    /// Appends new visible elements (ids from `id`, one transaction) onto
    /// the end of the run before cursor `c` if they continue it; false if
    /// they do not (then nothing changed).
    #[inline]
    pub fn try_append(
        &mut self,
        c: Cursor,
        id: ElemId,
        left: Option<ElemId>,
        right: Option<ElemId>,
        content: &C,
    ) -> bool {
        if c.off != 0 || c.run == 0 {
            return false;
        }
        let n = content.len();
        let leaf = c.leaf;
        let prev = &mut self.leaves[leaf as usize].runs[c.run - 1];
        let Some(shape) = prev.joins_new(id, left, right, n) else {
            return false;
        };
        prev.per_txn = shape;
        prev.len += n;
        if let Some(a) = &mut prev.content {
            a.append(content);
        }
        self.index.assign_new(id, n, false, leaf);
        self.bump(
            leaf,
            Sum {
                elems: n as u64,
                vis: n as u64,
                utf16: content.utf16() as u64,
                runs: 0,
            },
            Sum::default(),
        );
        true
    }

    /// Appends a run at the document's end, refusing ids already present
    /// (decoding states).
    pub fn push_checked(&mut self, mut run: Run<C>) -> bool {
        let leaf = self.last;
        run.per_txn &= run.len > 1;
        if !self.index.assign(run.id, run.len, run.per_txn, leaf, true) {
            return false;
        }
        let add = Sum::of(&run);
        self.leaves[leaf as usize].runs.push(run);
        self.bump(leaf, add, Sum::default());
        if self.leaves[leaf as usize].runs.len() > LEAF_MAX {
            self.split_leaf(leaf);
        }
        true
    }

    /// Splits run `c.run` before element `c.off` (if inside it); returns
    /// the index of the run that now starts at the cursor's element. The
    /// leaf may hold one run too many until the caller's next insert.
    pub fn split_at(&mut self, c: Cursor) -> usize {
        if c.off == 0 {
            return c.run;
        }
        let runs = &mut self.leaves[c.leaf as usize].runs;
        let tail = runs[c.run].split(c.off);
        runs.insert(c.run + 1, tail);
        self.bump(
            c.leaf,
            Sum {
                runs: 1,
                ..Sum::default()
            },
            Sum::default(),
        );
        c.run + 1
    }

    /// Deletes `n` elements from element `c.off` of run `c.run` (all in that
    /// run), dropping their content; returns the content removed (none if
    /// they were deleted already).
    pub fn delete(&mut self, c: Cursor, n: u32) -> Option<C> {
        let leaf = c.leaf;
        let before = self.leaves[leaf as usize].runs.len();
        let runs = &mut self.leaves[leaf as usize].runs;
        runs[c.run].content.as_ref()?;
        let mut i = c.run;
        if c.off > 0 {
            let tail = runs[i].split(c.off);
            runs.insert(i + 1, tail);
            i += 1;
        }
        if n < runs[i].len {
            let tail = runs[i].split(n);
            runs.insert(i + 1, tail);
        }
        let removed = runs[i].content.take();
        merge_pair(runs, i);
        if i > 0 {
            merge_pair(runs, i - 1);
        }
        let (up, down) = self.runs_delta(leaf, before);
        let gone = removed
            .as_ref()
            .map_or((0, 0), |c| (c.len() as u64, c.utf16() as u64));
        self.bump(
            leaf,
            Sum {
                runs: up,
                ..Sum::default()
            },
            Sum {
                elems: 0,
                vis: gone.0,
                utf16: gone.1,
                runs: down,
            },
        );
        if self.leaves[leaf as usize].runs.len() > LEAF_MAX {
            self.split_leaf(leaf);
        }
        removed
    }

    fn split_leaf(&mut self, l: u32) {
        let half = self.leaves[l as usize].runs.len() / 2;
        let tail = self.leaves[l as usize].runs.split_off(half);
        let nl = self.leaves.len() as u32;
        let next = self.leaves[l as usize].next;
        let parent = self.leaves[l as usize].parent;
        for r in &tail {
            self.index.assign(r.id, r.len, r.per_txn, nl, false);
        }
        self.leaves.push(Leaf {
            runs: tail,
            sum: Sum::default(),
            parent,
            next,
        });
        self.leaves[l as usize].next = nl;
        if self.last == l {
            self.last = nl;
        }
        let left = self.recount(l);
        let right = self.recount(nl);
        self.leaves[l as usize].sum = left;
        self.leaves[nl as usize].sum = right;
        self.add_sibling(l, nl, left, right, parent, true);
    }

    /// Puts `new` right after `old` in `parent` (a new root if none), with
    /// their sums.
    fn add_sibling(
        &mut self,
        old: u32,
        new: u32,
        s_old: Sum,
        s_new: Sum,
        parent: u32,
        leafy: bool,
    ) {
        if parent == NONE {
            let root = self.nodes.len() as u32;
            self.nodes.push(Node {
                kids: vec![old, new],
                sums: vec![s_old, s_new],
                parent: NONE,
                leafy,
            });
            self.set_parent(old, leafy, root);
            self.set_parent(new, leafy, root);
            self.root = root;
            self.height += 1;
            return;
        }
        let n = &mut self.nodes[parent as usize];
        let i = n.kids.iter().position(|k| *k == old).expect("child");
        n.sums[i] = s_old;
        n.kids.insert(i + 1, new);
        n.sums.insert(i + 1, s_new);
        self.set_parent(new, leafy, parent);
        if self.nodes[parent as usize].kids.len() > NODE_MAX {
            self.split_node(parent);
        }
    }

    fn set_parent(&mut self, kid: u32, leafy: bool, p: u32) {
        if leafy {
            self.leaves[kid as usize].parent = p;
        } else {
            self.nodes[kid as usize].parent = p;
        }
    }

    fn split_node(&mut self, p: u32) {
        let n = &mut self.nodes[p as usize];
        let half = n.kids.len() / 2;
        let kids = n.kids.split_off(half);
        let sums = n.sums.split_off(half);
        let leafy = n.leafy;
        let grand = n.parent;
        let mut s_old = Sum::default();
        for s in &n.sums {
            s_old.add(s);
        }
        let mut s_new = Sum::default();
        for s in &sums {
            s_new.add(s);
        }
        let np = self.nodes.len() as u32;
        for k in &kids {
            self.set_parent(*k, leafy, np);
        }
        self.nodes.push(Node {
            kids,
            sums,
            parent: grand,
            leafy,
        });
        self.add_sibling(p, np, s_old, s_new, grand, false);
    }

    /// Checks the sums and the index against the runs (tests).
    #[cfg(test)]
    pub fn check(&self) {
        fn sum_node<C: Chunk>(t: &Tree<C>, node: u32, h: u32) -> Sum {
            if h == 0 {
                assert_eq!(t.leaf_sum(node), t.recount(node), "a leaf's sum");
                return t.recount(node);
            }
            let n = &t.nodes[node as usize];
            let mut s = Sum::default();
            for (k, ks) in n.kids.iter().zip(&n.sums) {
                let real = sum_node(t, *k, h - 1);
                assert_eq!(real, *ks, "sum of a child");
                s.add(&real);
            }
            s
        }
        sum_node(self, self.root, self.height);
        let mut leaf = self.first;
        while leaf != NONE {
            for (i, r) in self.leaves[leaf as usize].runs.iter().enumerate() {
                assert!(r.len > 0);
                // Every element of short runs; the ends and a sample of long
                // ones (a hostile run may claim billions).
                let step = (r.len / 64).max(1);
                let ks = (0..r.len).step_by(step as usize).chain([r.len - 1]);
                for k in ks {
                    let c = self.locate(r.id_at(k)).expect("indexed");
                    assert_eq!((c.leaf, c.run, c.off), (leaf, i, k));
                }
            }
            leaf = self.leaves[leaf as usize].next;
        }
    }
}

/// Merges run `i` with run `i + 1` if they join.
#[inline]
fn merge_pair<C: Chunk>(runs: &mut Vec<Run<C>>, i: usize) -> bool {
    if i + 1 >= runs.len() {
        return false;
    }
    if let Some(shape) = runs[i].joins(&runs[i + 1], true) {
        let next = runs.remove(i + 1);
        runs[i].absorb(next, shape);
        return true;
    }
    false
}
