/**
 * A B+tree of block boundaries: entries `(pos, code)` sorted by `pos`, where each
 * entry starts a block that ends where the next entry starts. Every node keeps, per
 * status code, how many of its entries (leaf) or children (inner node) hold that code,
 * so "the next entry whose code is in a set" is found in O(log n), skipping subtrees.
 *
 * Invariants: leaves hold 1..LEAF_MAX entries, inner nodes 1..INNER_MAX children;
 * `keys[k]` of an inner node is the first `pos` below `children[k]`; `cnt[c]` counts
 * entries (leaf) or children whose subtree holds code c (inner).
 */

const LEAF_MAX = 128;
const INNER_MAX = 64;
const CODES = 5;

interface Leaf {
  readonly isLeaf: true;
  pos: number[];
  code: number[];
  readonly cnt: Int32Array;
  parent: Inner | null;
  next: Leaf | null;
  prev: Leaf | null;
}

interface Inner {
  readonly isLeaf: false;
  children: TreeNode[];
  keys: number[];
  readonly cnt: Int32Array;
  parent: Inner | null;
}

type TreeNode = Leaf | Inner;

/** A position in the tree: an entry of a leaf. Invalidated by any change. */
export interface Cursor {
  readonly leaf: Leaf;
  readonly i: number;
}

function maskOf(node: TreeNode): number {
  let m = 0;
  for (let c = 0; c < CODES; ++c) if (node.cnt[c]! > 0) m |= 1 << c;
  return m;
}

function newLeaf(pos: number[], code: number[]): Leaf {
  const leaf: Leaf = { isLeaf: true, pos, code, cnt: new Int32Array(CODES), parent: null, next: null, prev: null };
  for (const c of code) ++leaf.cnt[c]!;
  return leaf;
}

function newInner(children: TreeNode[]): Inner {
  const inner: Inner = { isLeaf: false, children, keys: children.map(firstPos), cnt: new Int32Array(CODES), parent: null };
  for (const ch of children) ch.parent = inner;
  recount(inner);
  return inner;
}

function firstPos(node: TreeNode): number {
  return node.isLeaf ? node.pos[0]! : node.keys[0]!;
}

function recount(inner: Inner): void {
  inner.cnt.fill(0);
  for (const ch of inner.children) {
    const m = maskOf(ch);
    for (let c = 0; c < CODES; ++c) if (m & (1 << c)) ++inner.cnt[c]!;
  }
}

export class BoundaryTree {
  #root: TreeNode;
  #length = 0;

  constructor(pos: readonly number[] = [], code: readonly number[] = []) {
    this.#root = newLeaf([], []);
    if (pos.length > 0) this.#build(pos, code);
  }

  /** Number of entries. */
  get length(): number {
    return this.#length;
  }

  /** Bulk load from sorted entries in O(n). */
  #build(pos: readonly number[], code: readonly number[]): void {
    const fill = Math.floor((LEAF_MAX * 3) / 4);
    let level: TreeNode[] = [];
    let prev: Leaf | null = null;
    for (let i = 0; i < pos.length; i += fill) {
      const leaf = newLeaf(pos.slice(i, i + fill), code.slice(i, i + fill));
      leaf.prev = prev;
      if (prev) prev.next = leaf;
      prev = leaf;
      level.push(leaf);
    }
    const innerFill = Math.floor((INNER_MAX * 3) / 4);
    while (level.length > 1) {
      const up: TreeNode[] = [];
      for (let i = 0; i < level.length; i += innerFill) up.push(newInner(level.slice(i, i + innerFill)));
      level = up;
    }
    this.#root = level[0]!;
    this.#length = pos.length;
  }

  /** The entry with the greatest `pos` ≤ `p`, or null if `p` is below the first entry. */
  locate(p: number): Cursor | null {
    let node = this.#root;
    while (!node.isLeaf) {
      const keys = node.keys;
      let lo = 0;
      let hi = keys.length - 1;
      if (keys[0]! > p) return null;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (keys[mid]! <= p) lo = mid;
        else hi = mid - 1;
      }
      node = node.children[lo]!;
    }
    const a = node.pos;
    if (a.length === 0 || a[0]! > p) return null;
    let lo = 0;
    let hi = a.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (a[mid]! <= p) lo = mid;
      else hi = mid - 1;
    }
    return { leaf: node, i: lo };
  }

  first(): Cursor | null {
    let node = this.#root;
    while (!node.isLeaf) node = node.children[0]!;
    return node.pos.length > 0 ? { leaf: node, i: 0 } : null;
  }

  last(): Cursor | null {
    let node = this.#root;
    while (!node.isLeaf) node = node.children[node.children.length - 1]!;
    return node.pos.length > 0 ? { leaf: node, i: node.pos.length - 1 } : null;
  }

  next(c: Cursor): Cursor | null {
    if (c.i + 1 < c.leaf.pos.length) return { leaf: c.leaf, i: c.i + 1 };
    return c.leaf.next ? { leaf: c.leaf.next, i: 0 } : null;
  }

  prev(c: Cursor): Cursor | null {
    if (c.i > 0) return { leaf: c.leaf, i: c.i - 1 };
    const p = c.leaf.prev;
    return p ? { leaf: p, i: p.pos.length - 1 } : null;
  }

  posAt(c: Cursor): number {
    return c.leaf.pos[c.i]!;
  }

  codeAt(c: Cursor): number {
    return c.leaf.code[c.i]!;
  }

  /** The first entry at or after `c` whose code is in `mask` (bit c for code c). */
  nextWithMask(c: Cursor, mask: number): Cursor | null {
    const codes = c.leaf.code;
    for (let i = c.i; i < codes.length; ++i) if (mask & (1 << codes[i]!)) return { leaf: c.leaf, i };
    let node: TreeNode = c.leaf;
    while (node.parent) {
      const parent: Inner = node.parent;
      const k = parent.children.indexOf(node);
      for (let j = k + 1; j < parent.children.length; ++j) {
        const ch = parent.children[j]!;
        if (maskOf(ch) & mask) return this.#descend(ch, mask, true);
      }
      node = parent;
    }
    return null;
  }

  /** The last entry at or before `c` whose code is in `mask`. */
  prevWithMask(c: Cursor, mask: number): Cursor | null {
    const codes = c.leaf.code;
    for (let i = c.i; i >= 0; --i) if (mask & (1 << codes[i]!)) return { leaf: c.leaf, i };
    let node: TreeNode = c.leaf;
    while (node.parent) {
      const parent: Inner = node.parent;
      const k = parent.children.indexOf(node);
      for (let j = k - 1; j >= 0; --j) {
        const ch = parent.children[j]!;
        if (maskOf(ch) & mask) return this.#descend(ch, mask, false);
      }
      node = parent;
    }
    return null;
  }

  #descend(node: TreeNode, mask: number, forward: boolean): Cursor {
    while (!node.isLeaf) {
      const ch: TreeNode[] = node.children;
      let found: TreeNode | undefined;
      if (forward) found = ch.find((x) => (maskOf(x) & mask) !== 0);
      else found = ch.findLast((x) => (maskOf(x) & mask) !== 0);
      if (!found) throw new Error('internal: subtree mask out of date');
      node = found;
    }
    const codes = node.code;
    if (forward) {
      for (let i = 0; i < codes.length; ++i) if (mask & (1 << codes[i]!)) return { leaf: node, i };
    } else {
      for (let i = codes.length - 1; i >= 0; --i) if (mask & (1 << codes[i]!)) return { leaf: node, i };
    }
    throw new Error('internal: leaf mask out of date');
  }

  /** Call `fn(pos, code)` for every entry in order. */
  forEach(fn: (pos: number, code: number) => void): void {
    for (let leaf = this.first()?.leaf ?? null; leaf; leaf = leaf.next) {
      const p = leaf.pos;
      const k = leaf.code;
      for (let i = 0; i < p.length; ++i) fn(p[i]!, k[i]!);
    }
  }

  /** Change the code of the entry at `c`. */
  setCode(c: Cursor, code: number): void {
    const leaf = c.leaf;
    const before = maskOf(leaf);
    --leaf.cnt[leaf.code[c.i]!]!;
    leaf.code[c.i] = code;
    ++leaf.cnt[code]!;
    this.#propagate(leaf, before);
  }

  /** Change the position of the entry at `c`; the caller keeps the order. */
  setPos(c: Cursor, pos: number): void {
    c.leaf.pos[c.i] = pos;
    if (c.i === 0) this.#fixKey(c.leaf);
  }

  /** Insert `(pos, code)` just after `c` (or first, when `c` is null). */
  insertAfter(c: Cursor | null, pos: number, code: number): void {
    let leaf: Leaf;
    let i: number;
    if (c) {
      leaf = c.leaf;
      i = c.i + 1;
    } else {
      let node = this.#root;
      while (!node.isLeaf) node = node.children[0]!;
      leaf = node;
      i = 0;
    }
    const before = maskOf(leaf);
    leaf.pos.splice(i, 0, pos);
    leaf.code.splice(i, 0, code);
    ++leaf.cnt[code]!;
    ++this.#length;
    this.#propagate(leaf, before);
    if (i === 0) this.#fixKey(leaf);
    if (leaf.pos.length > LEAF_MAX) this.#splitLeaf(leaf);
  }

  /** Remove the entry at `c`. */
  remove(c: Cursor): void {
    const leaf = c.leaf;
    const before = maskOf(leaf);
    --leaf.cnt[leaf.code[c.i]!]!;
    leaf.pos.splice(c.i, 1);
    leaf.code.splice(c.i, 1);
    --this.#length;
    if (leaf.pos.length === 0 && leaf.parent) {
      this.#removeNode(leaf);
      return;
    }
    this.#propagate(leaf, before);
    if (c.i === 0 && leaf.pos.length > 0) this.#fixKey(leaf);
    if (leaf.pos.length < LEAF_MAX / 4) this.#mergeLeaf(leaf);
  }

  /** After a node's counts changed, update the counts of its ancestors. */
  #propagate(node: TreeNode, before: number): void {
    let after = maskOf(node);
    while (before !== after && node.parent) {
      const parent: Inner = node.parent;
      const pBefore = maskOf(parent);
      const diff = before ^ after;
      for (let c = 0; c < CODES; ++c) if (diff & (1 << c)) parent.cnt[c]! += after & (1 << c) ? 1 : -1;
      node = parent;
      before = pBefore;
      after = maskOf(parent);
    }
  }

  #fixKey(node: TreeNode): void {
    while (node.parent) {
      const parent: Inner = node.parent;
      const k = parent.children.indexOf(node);
      parent.keys[k] = firstPos(node);
      if (k !== 0) return;
      node = parent;
    }
  }

  #splitLeaf(leaf: Leaf): void {
    const half = leaf.pos.length >> 1;
    const right = newLeaf(leaf.pos.splice(half), leaf.code.splice(half));
    leaf.cnt.fill(0);
    for (const c of leaf.code) ++leaf.cnt[c]!;
    right.next = leaf.next;
    if (right.next) right.next.prev = right;
    right.prev = leaf;
    leaf.next = right;
    this.#insertSibling(leaf, right);
  }

  #insertSibling(left: TreeNode, right: TreeNode): void {
    const parent = left.parent;
    if (!parent) {
      this.#root = newInner([left, right]);
      return;
    }
    const k = parent.children.indexOf(left);
    parent.children.splice(k + 1, 0, right);
    parent.keys.splice(k + 1, 0, firstPos(right));
    right.parent = parent;
    recount(parent);
    if (parent.children.length > INNER_MAX) {
      const half = parent.children.length >> 1;
      const moved = parent.children.splice(half);
      parent.keys.splice(half);
      recount(parent);
      this.#insertSibling(parent, newInner(moved));
    }
  }

  /** Unlink an empty leaf, or an inner node without children, from the tree. */
  #removeNode(node: TreeNode): void {
    if (node.isLeaf) {
      if (node.prev) node.prev.next = node.next;
      if (node.next) node.next.prev = node.prev;
    }
    const parent = node.parent;
    if (!parent) return;
    const before = maskOf(parent);
    const k = parent.children.indexOf(node);
    parent.children.splice(k, 1);
    parent.keys.splice(k, 1);
    if (parent.children.length === 0) {
      if (parent.parent) this.#removeNode(parent);
      else this.#root = newLeaf([], []);
      return;
    }
    recount(parent);
    this.#propagate(parent, before);
    if (k === 0) this.#fixKey(parent);
    this.#shrink(parent);
  }

  /** Merge a small leaf with its right (or left) sibling under the same parent. */
  #mergeLeaf(leaf: Leaf): void {
    const parent = leaf.parent;
    if (!parent) return;
    const k = parent.children.indexOf(leaf);
    let left: Leaf;
    let right: Leaf;
    if (k + 1 < parent.children.length) {
      left = leaf;
      right = parent.children[k + 1] as Leaf;
    } else if (k > 0) {
      left = parent.children[k - 1] as Leaf;
      right = leaf;
    } else return;
    if (left.pos.length + right.pos.length > LEAF_MAX) return;
    left.pos.push(...right.pos);
    left.code.push(...right.code);
    for (let c = 0; c < CODES; ++c) left.cnt[c]! += right.cnt[c]!;
    left.next = right.next;
    if (right.next) right.next.prev = left;
    const j = parent.children.indexOf(right);
    parent.children.splice(j, 1);
    parent.keys.splice(j, 1);
    recount(parent);
    this.#shrink(parent);
  }

  /** Merge a small inner node with a sibling, and drop a root with one child. */
  #shrink(inner: Inner): void {
    const parent = inner.parent;
    if (!parent) {
      if (inner.children.length === 1) {
        this.#root = inner.children[0]!;
        this.#root.parent = null;
      }
      return;
    }
    if (inner.children.length >= INNER_MAX / 4 || parent.children.length < 2) return;
    const k = parent.children.indexOf(inner);
    const left = (k + 1 < parent.children.length ? inner : parent.children[k - 1]!) as Inner;
    const right = parent.children[parent.children.indexOf(left) + 1] as Inner;
    if (left.children.length + right.children.length > INNER_MAX) return;
    for (const ch of right.children) ch.parent = left;
    left.children.push(...right.children);
    left.keys.push(...right.keys);
    recount(left);
    const j = parent.children.indexOf(right);
    parent.children.splice(j, 1);
    parent.keys.splice(j, 1);
    recount(parent);
    this.#shrink(parent);
  }
}
