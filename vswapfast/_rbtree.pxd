# cython: language_level=3
"""The red-black tree of rbtree.h (the kernel's struct rb_node layout,
rb_link_node / rb_insert_color / rb_erase), for cimport."""

from libc.stdint cimport uintptr_t

cdef extern from "rbtree.h" nogil:
    struct vrb_node:
        uintptr_t parent_color
        vrb_node *rb_right
        vrb_node *rb_left
    struct vrb_root:
        vrb_node *rb_node
    int VRB_RED
    int VRB_BLACK
    vrb_node *vrb_parent(const vrb_node *n)
    int vrb_is_red(const vrb_node *n)
    void vrb_link_node(vrb_node *n, vrb_node *parent, vrb_node **link)
    void vrb_insert_color(vrb_node *n, vrb_root *root)
    void vrb_erase(vrb_node *n, vrb_root *root)
    void vrb_clear_node(vrb_node *n)
    int vrb_empty_node(const vrb_node *n)
    vrb_node *vrb_take_leaf(vrb_root *root)
