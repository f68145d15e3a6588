"""Trees of values: a leaf, or tuples, lists (namedtuples) and dicts of trees, nested (JAX's pytrees).

The functional transforms take and return trees of tensors; checkpointed loops carry a tree as
their state. Both flatten a tree to its leaves, work on the leaves, and rebuild the same shape.
"""

from __future__ import annotations


class Tree:
    """The shape of a nested tuple/list/dict, without its leaves; rebuilds one from leaves.

    >>> leaves, tree = flatten({"x": 1, "h": (2, 3)})
    >>> leaves
    [1, 2, 3]
    >>> tree.unflatten([4, 5, 6])
    {'x': 4, 'h': (5, 6)}
    """

    __slots__ = ("kind", "keys", "children")

    def __init__(self, kind, keys=None, children=()):
        self.kind = kind  # None for a leaf, else the container type
        self.keys = keys
        self.children = children

    def __eq__(self, other):
        return (
            isinstance(other, Tree)
            and self.kind is other.kind
            and self.keys == other.keys
            and self.children == other.children
        )

    def __hash__(self):
        return hash((self.kind, self.keys, self.children))

    def __repr__(self):
        if self.kind is None:
            return "*"
        if self.kind is dict:
            return "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.keys, self.children)) + "}"
        inner = ", ".join(map(repr, self.children))
        return f"[{inner}]" if self.kind is list else f"{self.kind.__name__}({inner})"

    def unflatten(self, leaves):
        it = iter(leaves)
        return self._build(it)

    def _build(self, it):
        if self.kind is None:
            return next(it)
        children = [c._build(it) for c in self.children]
        if self.kind is dict:
            return dict(zip(self.keys, children))
        if self.kind is list:
            return children
        if self.kind is tuple:
            return tuple(children)
        return self.kind(*children)  # a namedtuple


_LEAF = Tree(None)


def flatten(tree):
    """(leaves, Tree) of a nested tuple/list/dict; anything else is a leaf."""
    leaves: list = []
    return leaves, _walk(tree, leaves)


def _walk(node, leaves) -> Tree:
    if isinstance(node, dict):
        keys = tuple(node)
        return Tree(dict, keys, tuple(_walk(node[k], leaves) for k in keys))
    if isinstance(node, (tuple, list)):
        return Tree(type(node), None, tuple(_walk(c, leaves) for c in node))
    leaves.append(node)
    return _LEAF


def tree_map(fn, tree):
    """The same tree with `fn` applied to every leaf.

    >>> tree_map(lambda v: v * 10, (1, [2, {"a": 3}]))
    (10, [20, {'a': 30}])
    """
    leaves, shape = flatten(tree)
    return shape.unflatten([fn(v) for v in leaves])
