"""Zswap entry indexes in pure Python: where a zswap entry is kept.

Two designs, after the stages of the virtual swap space series (see
``docs/semantics.md``, "Zswap index designs"):

    "vswap"     in the swap descriptors, under each cluster's lock (the
                seed patch).  The index is the space itself.
    "rbtree"    one index for the whole space under one lock, as zswap's
                one red-black tree per swap device up to 6.7 (the
                compiled core keeps a real red-black tree; here a dict).

The tree, and so its lock, is made when the first entry is stored in it.
``"tree"``, the design's former name, is a deprecated alias of ``"rbtree"``.

``ZswapIndex`` offers each design with the seed's zswap entry API and its
batch forms, so that their metadata costs can be compared without
compression; a ``Zswap`` pool keeps its entries in a ``_TreeIndex`` when it
is made with ``index="rbtree"``.

A tree is a dict from swap entry to zswap entry behind a lock that counts
its use (``_lock_counted``).  The tree designs keep entries out of the
descriptors, but still refuse entries without an allocated descriptor: the
bitmap is read without the cluster lock.  Each call takes a tree lock once
per entry, as the kernel's per-page ``xa_store``/``xa_load`` did, and no
tree lock is held while another is taken.

Locking
-------
    cluster lock  ->  tree lock  ->  (a pool's) LRU lock

A tree's lock guards its dict.  Trees are only ever added: a new one is
published with ``dict.setdefault``, an atomic insert under the GIL (a
compare-and-swap of the tree pointer in C), so lookups take no lock.
"""

from ..batch import (
    BATCH_BAD_HANDLE,
    BATCH_EMPTY,
    BATCH_FOREIGN,
    BATCH_INVALID,
    HANDLE_LIMIT,
    INDEX_DESIGNS,
    index_alias,
)
from .vswap import (
    VSwap,
    _CountedLock,
    _Handle,
    _as_entry,
    _check_item_count,
    _entries_arg,
    _fill_u64,
    _int_items,
    _int_view,
    _qualified_type,
    _status_array,
    _u64_out,
    _unwrap,
)

__all__ = ["ZswapIndex"]

def check_design_type(design, name):
    """Check the type of an index design argument: ``TypeError`` unless it
    is a str.  ``name`` is the argument's name in the message."""
    if not isinstance(design, str):
        raise TypeError("%s must be a str, not %s" % (name, type(design).__name__))


def check_design(design, name):
    """Check the value of an index design argument (a str): ``ValueError``
    unless it is one of ``INDEX_DESIGNS`` (a former name warns and gives
    the design's name now).  Return: it, as an exact str."""
    design = index_alias(design, name)
    if design not in INDEX_DESIGNS:
        raise ValueError("%s must be one of %s, not %r"
                         % (name, ", ".join(INDEX_DESIGNS), design))
    return str(design)


class _Tree(_CountedLock):
    """One tree: swap entry -> zswap entry, behind a counted lock."""

    __slots__ = ("entries",)

    def __init__(self):
        super().__init__()
        self.entries = {}


class _TreeIndex:
    """The tree of the "rbtree" design: one for every entry, made on first
    use."""

    __slots__ = ("_trees",)

    def __init__(self, design):
        # 0 -> the _Tree, once made.
        self._trees = {}

    def tree(self, entry):
        """The tree of ``entry`` (a valid swap entry), or None if the
        design has not created it yet.  Takes no lock."""
        return self._trees.get(0)

    def tree_for_store(self, entry):
        """The tree of ``entry``, created if need be.  Takes no lock."""
        tree = self._trees.get(0)
        if tree is None:
            tree = self._trees.setdefault(0, _Tree())
        return tree

    def trees(self):
        """A list of the trees made so far (a tree is never removed)."""
        return list(self._trees.values())

    def __len__(self):
        """Entries in all trees, each read without its lock."""
        return sum(len(tree.entries) for tree in self.trees())

    def empty(self):
        """Whether no tree holds an entry, each read without its lock."""
        return not any(tree.entries for tree in self.trees())

    def lock_totals(self):
        """``(acquisitions, contended, trees)`` of the trees' locks.

        Context: takes each tree's lock in turn to read its counters (those
        acquisitions are included).
        """
        acquisitions = contended = 0
        trees = self.trees()
        for tree in trees:
            with tree:
                acquisitions += tree.lock_acquisitions
                contended += tree.lock_contended
        return acquisitions, contended, len(trees)


class ZswapIndex:
    """A zswap entry index of one design over a ``VSwap``.

    ``design`` is ``"vswap"`` (the space's own descriptors) or ``"rbtree"``
    (see the module comment).  The API is the seed's zswap
    entry API and its batch forms, with the ``VSwap`` semantics: entries
    without an allocated descriptor raise ``InvalidEntryError`` (or report
    ``BATCH_INVALID``), and a handle stored by a batch call reads back
    through the single-entry calls as its int.

    Any number of indexes may share a space.  The "vswap" design is the
    space's zswap entry API itself.  The tree designs do not hear of
    ``VSwap.free``: as with the kernel's trees, the user erases an entry
    before freeing it, and an entry left behind stays in its tree (counted
    in ``len`` and ``zswap_empty``) until it is erased once its swap entry
    is allocated again.  Thread-safe.
    """

    __slots__ = ("_space", "_design", "_index")

    def __init__(self, space, design="vswap"):
        """Index the zswap entries of ``space`` (a ``VSwap`` of this core)
        in ``design``.

        ``TypeError`` for another core's space (or not a space at all) and
        for a design that is not a str; ``ValueError`` for an unknown design.
        """
        if not isinstance(space, VSwap):
            raise TypeError("space must be a VSwap of the pure core, not %s"
                            % _qualified_type(space))
        check_design_type(design, "design")
        design = check_design(design, "design")
        self._space = space
        self._design = design
        # None for "vswap": the space is the index.
        self._index = None if design == "vswap" else _TreeIndex(design)

    @property
    def space(self):
        """The ``VSwap`` whose entries are indexed."""
        return self._space

    @property
    def design(self):
        """``"vswap"`` or ``"rbtree"``."""
        return self._design

    # -- single entries --------------------------------------------------------

    def _check_entry(self, entry):
        """Checks 3 and 5 of ``entry`` without the cluster lock: raise
        ``InvalidEntryError`` unless it has an allocated descriptor."""
        self._space._check_range_unlocked(entry, 1)

    def zswap_entry_store(self, entry, zentry):
        """Store ``zentry`` as the zswap entry of ``entry``.

        Context: "vswap": the entry's cluster lock.  Trees: the entry's tree
        lock, under which the descriptor is checked again.

        Return: the previous zswap entry, or None; a handle as its int.
        """
        if self._index is None:
            return self._space.zswap_entry_store(entry, zentry)
        if type(entry) is not int:
            entry = _as_entry(entry)
        if zentry is None:
            raise TypeError("zentry must not be None; use zswap_entry_erase")
        self._check_entry(entry)
        tree = self._index.tree_for_store(entry)
        with tree:
            # Again under the tree lock, for an entry freed since.
            allocated = self._space._allocated(entry)
            if allocated:
                old = tree.entries.get(entry)
                tree.entries[entry] = zentry
        if not allocated:
            raise self._space._not_allocated(entry)
        return _unwrap(old)

    def zswap_entry_load(self, entry):
        """Look up the zswap entry of ``entry``.

        Context: "vswap": the entry's cluster lock.  Trees: the entry's tree
        lock, if the tree exists.

        Return: the zswap entry, or None; a handle as its int.
        """
        if self._index is None:
            return self._space.zswap_entry_load(entry)
        if type(entry) is not int:
            entry = _as_entry(entry)
        self._check_entry(entry)
        tree = self._index.tree(entry)
        if tree is None:
            return None
        with tree:
            value = tree.entries.get(entry)
        return _unwrap(value)

    def zswap_entry_erase(self, entry):
        """Clear the zswap entry of ``entry``.

        Context: "vswap": the entry's cluster lock.  Trees: the entry's tree
        lock, if the tree exists.

        Return: the zswap entry that was erased, or None; a handle as its
        int.
        """
        if self._index is None:
            return self._space.zswap_entry_erase(entry)
        if type(entry) is not int:
            entry = _as_entry(entry)
        self._check_entry(entry)
        tree = self._index.tree(entry)
        if tree is None:
            return None
        with tree:
            old = tree.entries.pop(entry, None)
        return _unwrap(old)

    def zswap_empty(self, entry=None):
        """Tell whether the index holds no zswap entry.

        ``entry`` is accepted for the kernel's signature and not used.

        Context: "vswap": as ``VSwap.zswap_empty``.  Trees: reads each
        tree's size without its lock.
        """
        if self._index is None:
            return self._space.zswap_empty()
        return self._index.empty()

    # -- batch calls ------------------------------------------------------------

    def zswap_entry_store_many(self, entries, handles, old=None):
        """As ``VSwap.zswap_entry_store_many``, in this design.

        Context: "vswap": one cluster lock per run of entries in a cluster.
        Trees: the entry's tree lock once per entry.

        Return: an ``array('b')`` of statuses.
        """
        if self._index is None:
            return self._space.zswap_entry_store_many(entries, handles, old)
        values = _entries_arg(entries)
        handles_view = _int_view(handles, "handles")
        old_view = None if old is None else _u64_out(old, "old")
        n = len(values)
        handle_values = _int_items(*handles_view)
        _check_item_count("handles", n, len(handle_values))
        if old_view is not None:
            _check_item_count("old", n, len(old_view))

        space = self._space
        status = _status_array(n)
        olds = [0] * n
        displaced = []
        for i, entry in enumerate(values):
            handle = handle_values[i]
            if not 1 <= handle < HANDLE_LIMIT:
                status[i] = BATCH_BAD_HANDLE
                continue
            if space._batch_cluster(entry, 1) is None or not space._allocated(entry):
                status[i] = BATCH_INVALID
                continue
            tree = self._index.tree_for_store(entry)
            with tree:
                allocated = space._allocated(entry)
                if allocated:
                    prev = tree.entries.get(entry)
                    tree.entries[entry] = _Handle(handle)
            if not allocated:
                status[i] = BATCH_INVALID
            elif prev is None:
                status[i] = BATCH_EMPTY
            elif type(prev) is _Handle:
                olds[i] = prev.value
            else:
                status[i] = BATCH_FOREIGN
                displaced.append(prev)
        if old_view is not None:
            _fill_u64(old_view, olds)
        # Other objects are released by dropping them, with no lock held.
        displaced.clear()
        return status

    def zswap_entry_load_many(self, entries, out):
        """As ``VSwap.zswap_entry_load_many``, in this design.

        Context: as ``zswap_entry_store_many``.

        Return: an ``array('b')`` of statuses.
        """
        if self._index is None:
            return self._space.zswap_entry_load_many(entries, out)
        values = _entries_arg(entries)
        out_view = _u64_out(out, "out")
        _check_item_count("out", len(values), len(out_view))
        status, handles, _ = self._load_erase_many(values, False)
        _fill_u64(out_view, handles)
        return status

    def zswap_entry_erase_many(self, entries, old=None):
        """As ``VSwap.zswap_entry_erase_many``, in this design.

        Context: as ``zswap_entry_store_many``.

        Return: an ``array('b')`` of statuses.
        """
        if self._index is None:
            return self._space.zswap_entry_erase_many(entries, old)
        values = _entries_arg(entries)
        old_view = None if old is None else _u64_out(old, "old")
        if old_view is not None:
            _check_item_count("old", len(values), len(old_view))
        status, handles, displaced = self._load_erase_many(values, True)
        if old_view is not None:
            _fill_u64(old_view, handles)
        displaced.clear()
        return status

    def _load_erase_many(self, values, erase):
        """The loop of the tree designs' load and erase batches.

        Return: the statuses, the handles (0 where none) and the objects
        erased that are not handles (to drop with no lock held).
        """
        space = self._space
        n = len(values)
        status = _status_array(n)
        handles = [0] * n
        displaced = []
        for i, entry in enumerate(values):
            if space._batch_cluster(entry, 1) is None or not space._allocated(entry):
                status[i] = BATCH_INVALID
                continue
            tree = self._index.tree(entry)
            if tree is None:
                status[i] = BATCH_EMPTY
                continue
            with tree:
                value = tree.entries.get(entry)
                if erase and value is not None:
                    del tree.entries[entry]
            if value is None:
                status[i] = BATCH_EMPTY
            elif type(value) is _Handle:
                handles[i] = value.value
            else:
                status[i] = BATCH_FOREIGN
                if erase:
                    displaced.append(value)
        return status, handles, displaced

    # -- introspection ------------------------------------------------------------

    def __len__(self):
        """Zswap entries in the index.

        Context: "vswap": the map lock, the clusters' counts read without
        their locks.  Trees: each tree's size read without its lock.
        """
        if self._index is None:
            return self._space._zswap_count()
        return len(self._index)

    def stats(self):
        """Summarise the index and the use of its locks.

        Context: "vswap": as ``VSwap.stats`` for the cluster locks.  Trees:
        each tree's lock in turn (those acquisitions are included).

        Return: a dict with ``design``, ``entries`` (as ``len``),
        ``locks`` (live clusters for "vswap", trees made so far otherwise),
        ``lock_acquisitions`` and ``lock_contended`` (over the life of the
        index; for "vswap" the cluster locks over the life of the space,
        whatever took them).
        """
        if self._index is None:
            acquisitions, contended, locks = self._space._lock_totals()
        else:
            acquisitions, contended, locks = self._index.lock_totals()
        return {
            "design": self._design,
            "entries": len(self),
            "locks": locks,
            "lock_acquisitions": acquisitions,
            "lock_contended": contended,
        }

    def __repr__(self):
        """Context: as ``stats``."""
        s = self.stats()
        return ("<ZswapIndex core=pure design=%s entries=%d locks=%d>"
                % (self._design, s["entries"], s["locks"]))
