//! [`Topics`], the trie of a publisher's subscriptions.

use alloc::vec::Vec;

#[derive(Debug, Clone)]
struct Node<K> {
    /// (byte, node index), sorted by byte.
    children: Vec<(u8, u32)>,
    /// The keys subscribed to the prefix ending here, sorted.
    keys: Vec<K>,
}

impl<K> Node<K> {
    const fn new() -> Self {
        Self { children: Vec::new(), keys: Vec::new() }
    }

    fn child(&self, byte: u8) -> Option<u32> {
        self.children.binary_search_by_key(&byte, |&(b, _)| b).ok().map(|i| self.children[i].1)
    }
}

/// A trie of topic prefixes, each holding the keys subscribed to it, for the
/// publisher-side filtering of [`super::Pub`] (thesis §5.4.1 uses a Patricia trie after
/// Sustrik 2013b).
///
/// A byte trie in one arena: a node per prefix byte, children sorted by byte (found by
/// binary search), the keys subscribed to the prefix that ends at a node, and nodes that
/// hold neither keys nor children removed at once (their slots reused). Matching a topic
/// walks its bytes once and visits every subscribed prefix of it. Written by hand: the
/// `no_std` tries on crates.io either need `std`, carry no per-node value set, or are far
/// larger than these hundred lines.
///
/// ```
/// use a3m_core::socket::Topics;
/// let mut t = Topics::new();
/// assert!(t.insert(b"news.", 1u32));
/// assert!(t.insert(b"", 2));
/// assert!(!t.insert(b"news.", 1)); // already there
/// let mut hits = Vec::new();
/// t.matches(b"news.sport", |k| hits.push(*k));
/// hits.sort();
/// assert_eq!(hits, [1, 2]);
/// assert!(t.remove(b"news.", &1));
/// hits.clear();
/// t.matches(b"news.sport", |k| hits.push(*k));
/// assert_eq!(hits, [2]);
/// ```
#[derive(Debug, Clone)]
pub struct Topics<K> {
    /// Node 0 is the root (the empty prefix).
    nodes: Vec<Node<K>>,
    free: Vec<u32>,
    /// How many (prefix, key) pairs are stored.
    len: usize,
}

impl<K: Ord + Copy> Default for Topics<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Copy> Topics<K> {
    /// An empty trie.
    pub fn new() -> Self {
        Self { nodes: alloc::vec![Node::new()], free: Vec::new(), len: 0 }
    }

    /// How many (prefix, key) subscriptions it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no subscription.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Subscribes `key` to `prefix`; false if it already was.
    pub fn insert(&mut self, prefix: &[u8], key: K) -> bool {
        let mut at = 0u32;
        for &byte in prefix {
            at = match self.nodes[at as usize].child(byte) {
                Some(next) => next,
                None => {
                    let next = match self.free.pop() {
                        Some(i) => i,
                        None => {
                            self.nodes.push(Node::new());
                            (self.nodes.len() - 1) as u32
                        }
                    };
                    let children = &mut self.nodes[at as usize].children;
                    let i = children.partition_point(|&(b, _)| b < byte);
                    children.insert(i, (byte, next));
                    next
                }
            };
        }
        let keys = &mut self.nodes[at as usize].keys;
        match keys.binary_search(&key) {
            Ok(_) => false,
            Err(i) => {
                keys.insert(i, key);
                self.len += 1;
                true
            }
        }
    }

    /// Unsubscribes `key` from `prefix`; false if it was not subscribed. Prunes the nodes
    /// left empty.
    pub fn remove(&mut self, prefix: &[u8], key: &K) -> bool {
        // The path: (parent, byte) per step, to prune upwards.
        let mut path: Vec<(u32, u8)> = Vec::with_capacity(prefix.len());
        let mut at = 0u32;
        for &byte in prefix {
            let Some(next) = self.nodes[at as usize].child(byte) else { return false };
            path.push((at, byte));
            at = next;
        }
        let keys = &mut self.nodes[at as usize].keys;
        let Ok(i) = keys.binary_search(key) else { return false };
        keys.remove(i);
        self.len -= 1;
        while let Some((parent, byte)) = path.pop() {
            let node = &self.nodes[at as usize];
            if !node.keys.is_empty() || !node.children.is_empty() {
                break;
            }
            let node = &mut self.nodes[at as usize];
            node.keys = Vec::new();
            node.children = Vec::new();
            self.free.push(at);
            let children = &mut self.nodes[parent as usize].children;
            if let Ok(i) = children.binary_search_by_key(&byte, |&(b, _)| b) {
                children.remove(i);
            }
            at = parent;
        }
        true
    }

    /// Calls `f` with every key subscribed to a prefix of `topic` (the empty prefix
    /// included); a key subscribed to several of them comes once per prefix.
    pub fn matches(&self, topic: &[u8], mut f: impl FnMut(&K)) {
        let mut node = &self.nodes[0];
        node.keys.iter().for_each(&mut f);
        for &byte in topic {
            let Some(next) = node.child(byte) else { return };
            node = &self.nodes[next as usize];
            node.keys.iter().for_each(&mut f);
        }
    }

    /// Nodes in use (the root included): what the trie costs.
    pub fn nodes(&self) -> usize {
        self.nodes.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(t: &Topics<u32>, topic: &[u8]) -> Vec<u32> {
        let mut v = Vec::new();
        t.matches(topic, |k| v.push(*k));
        v.sort_unstable();
        v
    }

    #[test]
    fn prefixes_match_and_prune() {
        let mut t = Topics::new();
        assert!(t.insert(b"ab", 1));
        assert!(t.insert(b"abc", 2));
        assert!(t.insert(b"b", 3));
        assert_eq!(hits(&t, b"abcd"), [1, 2]);
        assert_eq!(hits(&t, b"a"), Vec::<u32>::new());
        assert_eq!(hits(&t, b"b"), [3]);
        assert!(t.remove(b"abc", &2));
        assert!(!t.remove(b"abc", &2));
        assert!(!t.remove(b"zz", &2));
        assert_eq!(hits(&t, b"abcd"), [1]);
        assert!(t.remove(b"ab", &1));
        assert!(t.remove(b"b", &3));
        assert!(t.is_empty());
        assert_eq!(t.nodes(), 1);
        // Freed nodes are reused.
        assert!(t.insert(b"xyz", 4));
        assert_eq!(t.nodes(), 4);
        assert_eq!(hits(&t, b"xyz!"), [4]);
    }
}
