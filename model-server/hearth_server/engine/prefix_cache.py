"""Prefix cache: KV blocks of earlier prompts, reused by later prompts that begin alike.

Prompts are cut into blocks of ``block_size`` tokens. The cache is a trie per namespace
(the base model, or one adapter's weights: a prefix computed with one LoRA is never valid
for another): a node is one block, its path from the root spells the tokens before it, so
a lookup compares exact tokens and can never confuse two prefixes.

Nothing in the cache is needed for correctness: a miss only means more prefill. So the
budget is enforced by evicting least recently used leaves (a leaf, so that every cached
block keeps the blocks before it), and eviction never fails a request.

LRU order keeps every parent more recently used than its children (each touch walks a
path leaf first, root last), so the oldest entry is always a leaf and eviction is O(1).

Pure Python: the cached values are opaque (the engine stores tensors).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

Namespace = Hashable  # None for the base model, an adapter's weights identity otherwise


@dataclass(eq=False)
class _Block(Generic[T]):
    tokens: tuple[int, ...]
    value: T
    parent: _Block[T] | None
    namespace: Namespace
    children: dict[tuple[int, ...], _Block[T]] = field(default_factory=dict)


@dataclass
class PrefixCacheStats:
    queried_tokens: int = 0  # prompt tokens looked up
    hit_tokens: int = 0  # of those, found in the cache
    evicted_blocks: int = 0


@dataclass(frozen=True)
class PrefixCacheReadings:
    """What /metrics shows of a prefix cache: plain numbers, so that an engine in
    another process can send them."""

    queried_tokens: int
    hit_tokens: int
    num_tokens: int
    capacity_tokens: int


class PrefixCache(Generic[T]):
    """Only the engine thread calls this (no locking)."""

    def __init__(self, block_size: int, max_tokens: int) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = block_size
        self.max_blocks = max_tokens // block_size
        self._roots: dict[Namespace, dict[tuple[int, ...], _Block[T]]] = {}
        self._lru: OrderedDict[_Block[T], None] = OrderedDict()  # oldest first
        self.stats = PrefixCacheStats()

    @property
    def num_blocks(self) -> int:
        return len(self._lru)

    @property
    def num_tokens(self) -> int:
        return len(self._lru) * self.block_size

    def readings(self) -> PrefixCacheReadings:
        return PrefixCacheReadings(
            self.stats.queried_tokens,
            self.stats.hit_tokens,
            self.num_tokens,
            self.max_blocks * self.block_size,
        )

    def match(self, namespace: Namespace, tokens: Sequence[int]) -> list[T]:
        """Values of the longest cached block prefix of ``tokens``. The last token is
        never covered: its forward pass gives the logits of the first output token."""
        path = self._walk(namespace, tokens, (len(tokens) - 1) // self.block_size)
        self._touch(path)
        self.stats.queried_tokens += len(tokens)
        self.stats.hit_tokens += len(path) * self.block_size
        return [b.value for b in path]

    def cached_blocks(self, namespace: Namespace, tokens: Sequence[int]) -> int:
        """How many full blocks of ``tokens`` are cached already (no LRU effect)."""
        return len(self._walk(namespace, tokens, len(tokens) // self.block_size))

    def insert(
        self, namespace: Namespace, tokens: Sequence[int], first: int, values: Sequence[T]
    ) -> int:
        """Store ``values`` as blocks ``first, first + 1, ...`` of ``tokens``; blocks
        ``0..first-1`` must be cached. Returns how many blocks were added: fewer when
        the budget is full of this very path, none when the prefix was evicted since."""
        path = self._walk(namespace, tokens, first)
        if len(path) < first:
            return 0
        self._touch(path)  # the newest entries, so eviction takes others first
        protected = set(path)
        added = 0
        for i, value in enumerate(values):
            block_tokens = self._block(tokens, first + i)
            parent = path[-1] if path else None
            block = self._children(namespace, parent).get(block_tokens)
            if block is None:
                if not self._make_room(protected):
                    break
                block = _Block(block_tokens, value, parent, namespace)
                # After _make_room: an emptied root table may have been removed.
                self._children(namespace, parent)[block_tokens] = block
                self._lru[block] = None
                added += 1
            path.append(block)
            protected.add(block)
        self._touch(path)
        return added

    def drop(self, doomed: Callable[[Namespace], bool]) -> int:
        """Forget every namespace for which ``doomed`` is true; returns blocks freed."""
        freed = 0
        for namespace in [ns for ns in self._roots if doomed(ns)]:
            stack = list(self._roots.pop(namespace).values())
            while stack:
                block = stack.pop()
                stack.extend(block.children.values())
                del self._lru[block]
                freed += 1
        return freed

    # -- internals ---------------------------------------------------------------------------
    def _block(self, tokens: Sequence[int], index: int) -> tuple[int, ...]:
        size = self.block_size
        return tuple(tokens[index * size : (index + 1) * size])

    def _children(
        self, namespace: Namespace, parent: _Block[T] | None
    ) -> dict[tuple[int, ...], _Block[T]]:
        if parent is not None:
            return parent.children
        return self._roots.setdefault(namespace, {})

    def _walk(self, namespace: Namespace, tokens: Sequence[int], limit: int) -> list[_Block[T]]:
        path: list[_Block[T]] = []
        siblings = self._roots.get(namespace)
        for i in range(min(limit, len(tokens) // self.block_size)):
            if not siblings:
                break
            block = siblings.get(self._block(tokens, i))
            if block is None:
                break
            path.append(block)
            siblings = block.children
        return path

    def _touch(self, path: list[_Block[T]]) -> None:
        for block in reversed(path):  # leaf first: parents end up more recent
            self._lru.move_to_end(block)

    def _make_room(self, protected: set[_Block[T]]) -> bool:
        while len(self._lru) >= self.max_blocks:
            if not self._lru:
                return False  # a zero budget
            oldest = next(iter(self._lru))
            if oldest in protected:
                return False  # only the path being stored is left
            self._evict(oldest)
        return True

    def _evict(self, block: _Block[T]) -> None:
        assert not block.children, "LRU order keeps parents newer than their children"
        siblings = block.parent.children if block.parent else self._roots[block.namespace]
        del siblings[block.tokens]
        if not siblings and block.parent is None:
            del self._roots[block.namespace]
        del self._lru[block]
        self.stats.evicted_blocks += 1
