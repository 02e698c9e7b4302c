/*
 * A red-black tree with the kernel's node layout (include/linux/rbtree.h,
 * include/linux/rbtree_types.h, lib/rbtree.c), for the ``rbtree`` design:
 * zswap kept its entries in one of these per swap device until 6.8.
 *
 * ``struct vrb_node`` is ``struct rb_node``: the parent pointer and the
 * colour in one word (``__rb_parent_color``, colour in bit 0: RB_RED 0,
 * RB_BLACK 1), then ``rb_right`` and ``rb_left`` -- 24 bytes on x86-64,
 * embedded in the structure it indexes, as ``struct zswap_entry`` embeds
 * ``rbnode``.  ``struct vrb_root`` is ``struct rb_root``: one pointer.
 *
 * The tree is intrusive and allocates nothing: the caller finds the link
 * where a new node goes (``zswap_rb_insert()`` walks the tree by swap
 * offset and calls ``rb_link_node()``), links it red, then calls
 * vrb_insert_color(), which restores the red-black properties as
 * ``rb_insert_color()`` does (recolouring while the uncle is red, then at
 * most two rotations).  vrb_erase() unlinks a node (its in-order successor
 * takes its place when it has two children) and rebalances as
 * ``rb_erase()`` does (at most three rotations).  The algorithms are the
 * textbook ones (Cormen et al., chapter 13) written for NULL leaves; the
 * kernel's lib/rbtree.c is an optimised form of the same cases.
 *
 * No locking here: the caller holds the tree's lock (zswap's tree->lock)
 * for every call, readers included.
 */
#ifndef VSWAPFAST_RBTREE_H
#define VSWAPFAST_RBTREE_H

#include <stdint.h>
#include <stddef.h>

#define VRB_RED 0
#define VRB_BLACK 1

struct vrb_node {
    uintptr_t parent_color;         /* __rb_parent_color */
    struct vrb_node *rb_right;
    struct vrb_node *rb_left;
} __attribute__((aligned(sizeof(long))));

struct vrb_root {
    struct vrb_node *rb_node;
};

_Static_assert(sizeof(struct vrb_node) == 24, "struct rb_node is 24 bytes on x86-64");
_Static_assert(sizeof(struct vrb_root) == 8, "struct rb_root is one pointer");

static inline struct vrb_node *vrb_parent(const struct vrb_node *n)
{
    return (struct vrb_node *)(n->parent_color & ~(uintptr_t)3);
}

static inline int vrb_is_red(const struct vrb_node *n)
{
    return n != NULL && !(n->parent_color & 1);
}

/* NULL leaves are black. */
static inline int vrb_is_black(const struct vrb_node *n)
{
    return n == NULL || (n->parent_color & 1);
}

static inline int vrb_color(const struct vrb_node *n)
{
    return (int)(n->parent_color & 1);
}

static inline void vrb_set_parent(struct vrb_node *n, struct vrb_node *p)
{
    n->parent_color = (uintptr_t)p | (n->parent_color & 1);
}

static inline void vrb_set_color(struct vrb_node *n, int color)
{
    n->parent_color = (n->parent_color & ~(uintptr_t)1) | (uintptr_t)color;
}

/* RB_CLEAR_NODE / RB_EMPTY_NODE: a node on no tree points to itself. */
static inline void vrb_clear_node(struct vrb_node *n)
{
    n->parent_color = (uintptr_t)n;
}

static inline int vrb_empty_node(const struct vrb_node *n)
{
    return n->parent_color == (uintptr_t)n;
}

/* rb_link_node(): put ``n`` at ``*link`` below ``parent``, red. */
static inline void vrb_link_node(struct vrb_node *n, struct vrb_node *parent,
                                 struct vrb_node **link)
{
    n->parent_color = (uintptr_t)parent;        /* red: bit 0 clear */
    n->rb_left = n->rb_right = NULL;
    *link = n;
}

/* Make ``new`` take ``old``'s place in its parent (or at the root). */
static inline void vrb_replace_child(struct vrb_root *root, struct vrb_node *parent,
                                     struct vrb_node *old, struct vrb_node *new)
{
    if (parent == NULL)
        root->rb_node = new;
    else if (parent->rb_left == old)
        parent->rb_left = new;
    else
        parent->rb_right = new;
}

/* x's right child y takes x's place; x becomes y's left child. */
static inline void vrb_rotate_left(struct vrb_root *root, struct vrb_node *x)
{
    struct vrb_node *y = x->rb_right;
    struct vrb_node *p = vrb_parent(x);

    x->rb_right = y->rb_left;
    if (y->rb_left)
        vrb_set_parent(y->rb_left, x);
    vrb_set_parent(y, p);
    vrb_replace_child(root, p, x, y);
    y->rb_left = x;
    vrb_set_parent(x, y);
}

/* The mirror image. */
static inline void vrb_rotate_right(struct vrb_root *root, struct vrb_node *x)
{
    struct vrb_node *y = x->rb_left;
    struct vrb_node *p = vrb_parent(x);

    x->rb_left = y->rb_right;
    if (y->rb_right)
        vrb_set_parent(y->rb_right, x);
    vrb_set_parent(y, p);
    vrb_replace_child(root, p, x, y);
    y->rb_right = x;
    vrb_set_parent(x, y);
}

/* rb_insert_color(): ``n`` was just linked red; restore the properties. */
static inline void vrb_insert_color(struct vrb_node *n, struct vrb_root *root)
{
    struct vrb_node *p, *g, *u;

    while ((p = vrb_parent(n)) != NULL && vrb_is_red(p)) {
        g = vrb_parent(p);                  /* a red node is never the root */
        if (p == g->rb_left) {
            u = g->rb_right;
            if (vrb_is_red(u)) {            /* red uncle: recolour, go up */
                vrb_set_color(p, VRB_BLACK);
                vrb_set_color(u, VRB_BLACK);
                vrb_set_color(g, VRB_RED);
                n = g;
                continue;
            }
            if (n == p->rb_right) {         /* inner grandchild: straighten */
                vrb_rotate_left(root, p);
                n = p;
                p = vrb_parent(n);
            }
            vrb_set_color(p, VRB_BLACK);
            vrb_set_color(g, VRB_RED);
            vrb_rotate_right(root, g);
        } else {
            u = g->rb_left;
            if (vrb_is_red(u)) {
                vrb_set_color(p, VRB_BLACK);
                vrb_set_color(u, VRB_BLACK);
                vrb_set_color(g, VRB_RED);
                n = g;
                continue;
            }
            if (n == p->rb_left) {
                vrb_rotate_right(root, p);
                n = p;
                p = vrb_parent(n);
            }
            vrb_set_color(p, VRB_BLACK);
            vrb_set_color(g, VRB_RED);
            vrb_rotate_left(root, g);
        }
    }
    vrb_set_color(root->rb_node, VRB_BLACK);
}

/* A black node was removed above ``x`` (maybe NULL), child of ``xp``: the
 * path through x is one black short; push the deficit up or rotate it away. */
static inline void vrb_erase_fixup(struct vrb_root *root, struct vrb_node *x,
                                   struct vrb_node *xp)
{
    struct vrb_node *w;

    while (x != root->rb_node && vrb_is_black(x)) {
        if (x == xp->rb_left) {
            w = xp->rb_right;               /* never NULL: it has black height >= 1 */
            if (vrb_is_red(w)) {
                vrb_set_color(w, VRB_BLACK);
                vrb_set_color(xp, VRB_RED);
                vrb_rotate_left(root, xp);
                w = xp->rb_right;
            }
            if (vrb_is_black(w->rb_left) && vrb_is_black(w->rb_right)) {
                vrb_set_color(w, VRB_RED);
                x = xp;
                xp = vrb_parent(x);
                continue;
            }
            if (vrb_is_black(w->rb_right)) {
                vrb_set_color(w->rb_left, VRB_BLACK);
                vrb_set_color(w, VRB_RED);
                vrb_rotate_right(root, w);
                w = xp->rb_right;
            }
            vrb_set_color(w, vrb_color(xp));
            vrb_set_color(xp, VRB_BLACK);
            vrb_set_color(w->rb_right, VRB_BLACK);
            vrb_rotate_left(root, xp);
        } else {
            w = xp->rb_left;
            if (vrb_is_red(w)) {
                vrb_set_color(w, VRB_BLACK);
                vrb_set_color(xp, VRB_RED);
                vrb_rotate_right(root, xp);
                w = xp->rb_left;
            }
            if (vrb_is_black(w->rb_left) && vrb_is_black(w->rb_right)) {
                vrb_set_color(w, VRB_RED);
                x = xp;
                xp = vrb_parent(x);
                continue;
            }
            if (vrb_is_black(w->rb_left)) {
                vrb_set_color(w->rb_right, VRB_BLACK);
                vrb_set_color(w, VRB_RED);
                vrb_rotate_left(root, w);
                w = xp->rb_left;
            }
            vrb_set_color(w, vrb_color(xp));
            vrb_set_color(xp, VRB_BLACK);
            vrb_set_color(w->rb_left, VRB_BLACK);
            vrb_rotate_right(root, xp);
        }
        x = root->rb_node;
        break;
    }
    if (x)
        vrb_set_color(x, VRB_BLACK);
}

/* rb_erase(): unlink ``z`` from the tree and rebalance. */
static inline void vrb_erase(struct vrb_node *z, struct vrb_root *root)
{
    struct vrb_node *x, *xp, *y;
    int removed_color = vrb_color(z);

    if (z->rb_left == NULL || z->rb_right == NULL) {
        x = z->rb_left ? z->rb_left : z->rb_right;
        xp = vrb_parent(z);
        vrb_replace_child(root, xp, z, x);
        if (x)
            vrb_set_parent(x, xp);
    } else {
        /* two children: the successor y (leftmost on the right) moves up */
        y = z->rb_right;
        while (y->rb_left)
            y = y->rb_left;
        removed_color = vrb_color(y);
        x = y->rb_right;
        if (vrb_parent(y) == z) {
            xp = y;
        } else {
            xp = vrb_parent(y);
            xp->rb_left = x;
            if (x)
                vrb_set_parent(x, xp);
            y->rb_right = z->rb_right;
            vrb_set_parent(y->rb_right, y);
        }
        vrb_replace_child(root, vrb_parent(z), z, y);
        y->parent_color = z->parent_color;      /* z's parent and colour */
        y->rb_left = z->rb_left;
        vrb_set_parent(y->rb_left, y);
    }
    if (removed_color == VRB_BLACK)
        vrb_erase_fixup(root, x, xp);
}

/* rb_first_postorder()-style teardown: detach and return the nodes one by
 * one, leaves first (NULL when the tree is empty); no rebalancing. */
static inline struct vrb_node *vrb_take_leaf(struct vrb_root *root)
{
    struct vrb_node *n = root->rb_node, *p;

    if (n == NULL)
        return NULL;
    for (;;) {
        if (n->rb_left)
            n = n->rb_left;
        else if (n->rb_right)
            n = n->rb_right;
        else
            break;
    }
    p = vrb_parent(n);
    vrb_replace_child(root, p, n, NULL);
    return n;
}

#endif
