"""Constrained decoding: structured-output specs, their grammars, and per-row matchers.

``StructuredSpec`` is what the API layers (OpenAI ``response_format``, Anthropic
``output_format``, forced tool calls) hand to the engine. The engine compiles it once per
distinct spec into an llguidance matcher (cached per tokenizer), gives each constrained
row its own copy, masks that row's logits with the tokens the grammar allows next and
advances the matcher on the sampled token.

llguidance is imported only when the first constrained request arrives: a server that
never sees one never loads it, and unconstrained rows never call into this module.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

if TYPE_CHECKING:
    import llguidance
    from llguidance._lib import JsonCompileOptions

StructuredKind = Literal["json_object", "json_schema", "grammar"]

# Distinct compiled specs kept per tokenizer (each holds a lexer and parser tables).
CACHE_SIZE = 64

# JSON is generated in one canonical layout (``{"a": 1, "b": [2, 3]}``): free whitespace
# lets a model pad with spaces and newlines until max_tokens instead of closing the value.
_JSON_LAYOUT: JsonCompileOptions = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}

_ANY_OBJECT: Mapping[str, Any] = {"type": "object"}

# Deeper schemas are refused before anything recurses over them.
MAX_SCHEMA_DEPTH = 64


@dataclass(frozen=True)
class StructuredSpec:
    """What a request's output must match.

    - ``json_object``: any JSON object;
    - ``json_schema``: a JSON value valid against ``schema``;
    - ``grammar``: text matching the GBNF grammar ``grammar`` (Fireworks' grammar mode).
    """

    kind: StructuredKind
    schema: Mapping[str, Any] | None = None  # json_schema
    grammar: str | None = None  # GBNF text for kind="grammar"
    strict: bool = True


class GrammarError(ValueError):
    """The spec cannot be compiled; the message names the unsupported feature or the
    syntax error."""


def spec_key(spec: StructuredSpec) -> str:
    """A canonical text for ``spec``: equal specs share one compiled grammar. Raises
    GrammarError for a schema nested deeper than MAX_SCHEMA_DEPTH."""
    if spec.schema is not None and nesting(spec.schema) > MAX_SCHEMA_DEPTH:
        raise GrammarError(f"the schema is nested deeper than {MAX_SCHEMA_DEPTH} levels")
    schema = None if spec.schema is None else json.dumps(spec.schema, sort_keys=True)
    return json.dumps([spec.kind, schema, spec.grammar])


def nesting(value: Any) -> int:
    """How deeply objects and arrays nest in ``value`` (iterative: no recursion limit)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        children = item.values() if isinstance(item, Mapping) else item
        if isinstance(item, Mapping | list):
            deepest = max(deepest, depth)
            todo.extend((child, depth + 1) for child in children)
    return deepest


def closed_objects(schema: Any, in_all_of: bool = False) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object schema that lists
    ``properties`` and says nothing about extra keys: Fireworks treats such schemas as
    closed, and a model left free to add keys tends to. Branches of ``allOf`` are left
    open, since closing each would forbid the other branches' keys."""
    if isinstance(schema, list):
        return [closed_objects(s, in_all_of) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {k: closed_objects(v, k == "allOf") for k, v in schema.items()}
    open_keys = ("additionalProperties", "unevaluatedProperties", "patternProperties")
    if "properties" in schema and not in_all_of and not any(k in schema for k in open_keys):
        out["additionalProperties"] = False
    return out


def grammar_text(spec: StructuredSpec) -> str:
    """The llguidance grammar for ``spec`` (not yet checked against a tokenizer)."""
    import llguidance

    if spec.kind == "grammar":
        if not spec.grammar or not spec.grammar.strip():
            raise GrammarError("the grammar is empty")
        try:
            return llguidance.grammar_from("gbnf", spec.grammar)
        except ValueError as exc:  # the GBNF-to-Lark conversion names the problem
            raise GrammarError(f"invalid grammar: {_without_prefix(str(exc))}") from None
        except RecursionError:
            raise GrammarError("the grammar is nested too deeply") from None
    schema = _ANY_OBJECT if spec.kind == "json_object" else spec.schema
    if schema is None:
        raise GrammarError("json_schema needs a schema")
    try:
        return llguidance.LLMatcher.grammar_from_json_schema(
            closed_objects(schema), overrides=_JSON_LAYOUT
        )
    except ValueError as exc:
        raise GrammarError(f"the schema is not valid JSON: {exc}") from None
    except RecursionError:
        raise GrammarError("the schema is nested too deeply") from None


def check_grammar(grammar: str, tokenizer: llguidance.LLTokenizer | None = None) -> None:
    """Raise GrammarError naming what llguidance cannot enforce (``Unimplemented keys:
    ["uniqueItems"]``, ``Unknown format: foo``, a grammar syntax error)."""
    import llguidance

    failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
    if failed:
        raise GrammarError(_explain(messages[0] if messages else "the grammar is invalid"))


def _explain(message: str) -> str:
    """llguidance's message, first line only, with its key list spelt for a reader."""
    line = _first_line(message)
    if "coerce_one_of" in line:
        return "unsupported JSON Schema feature: oneOf with overlapping branches (use anyOf)"
    for prefix in ("Unimplemented keys: ", "Unimplemented key: "):
        if line.startswith(prefix):
            try:
                keys = json.loads(line.removeprefix(prefix))
            except ValueError:
                break
            if isinstance(keys, list) and keys:
                names = ", ".join(str(k) for k in keys)
                return f"unsupported JSON Schema keyword: {names}"
    return line


def _without_prefix(message: str) -> str:
    return message.removeprefix("Failed to convert the grammar from GBNF to Lark: ")


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message


_checked: OrderedDict[str, str] = OrderedDict()
_checked_lock = threading.Lock()


def validate_spec(spec: StructuredSpec) -> None:
    """Raise GrammarError if ``spec`` cannot be enforced, whatever the tokenizer (used by
    the API layers to answer 400 before a request reaches the engine). Cached."""
    key = spec_key(spec)
    with _checked_lock:
        if key in _checked:
            _checked.move_to_end(key)
            return
    grammar = grammar_text(spec)
    check_grammar(grammar)
    with _checked_lock:
        _checked[key] = grammar
        while len(_checked) > CACHE_SIZE:
            _checked.popitem(last=False)


class Constraint:
    """One row's matcher: which tokens may come next, and whether the output is done."""

    def __init__(self, matcher: llguidance.LLMatcher, vocab_size: int) -> None:
        self._matcher = matcher
        self._vocab_size = vocab_size

    def allowed(self) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """A bool array over the model's vocabulary: True where the token may come next
        (EOS is among them only once the output is complete)."""
        return self._unpack(np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8))

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        """A copy of one row's ``logits`` with every token the grammar refuses next at
        -inf. Raises GrammarError if the matcher failed or allows nothing.

        numpy rather than torch: on a vector this size torch's ops wake its thread pool,
        which costs milliseconds on a busy machine; numpy's take tens of microseconds.
        """
        packed = np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8)
        if self._matcher.is_error():
            raise GrammarError(f"the structured output grammar failed: {self.error}")
        refused = self._unpack(~packed)
        if refused.all():
            raise GrammarError("the structured output grammar allows no token here")
        if logits.device.type != "cpu":
            return logits.masked_fill(torch.from_numpy(refused).to(logits.device), -torch.inf)
        out = logits.numpy().copy()
        np.putmask(out, refused, -np.inf)
        return torch.from_numpy(out)

    def _unpack(self, packed: np.ndarray[Any, np.dtype[np.uint8]]) -> np.ndarray[Any, Any]:
        bits = np.unpackbits(packed, bitorder="little")[: self._vocab_size]
        return bits.view(np.bool_)

    def advance(self, token: int) -> bool:
        """Feed the sampled token; True when the grammar admits no further token (the
        row is finished). A token the grammar refuses raises GrammarError."""
        if not self._matcher.consume_token(token):
            raise GrammarError(f"the grammar refused token {token}: {self._matcher.get_error()}")
        return self._matcher.is_stopped()

    @property
    def error(self) -> str | None:
        """Why the matcher stopped following the output (first line: the rest dumps the
        parser's state and the grammar), or None."""
        return _first_line(self._matcher.get_error()) if self._matcher.is_error() else None


# Decoded by llguidance and by the model's own tokenizer, it must read the same: spaces,
# newlines, tabs, multi-byte characters and JSON punctuation.
_PROBE = 'Hello {"a b": [1, 2.5]}\n\tnaïve 日本 ✓'


def tokenizer_json(hf_tokenizer: Any) -> str:
    """The fast tokenizer's JSON, fixed up for llguidance.

    Tokenizers converted from GGUF (the bundled SmolLM2) decode through a chain
    (ByteFallback, Fuse, Replace, ByteLevel) that llguidance does not unpick: it would read
    byte-level tokens such as ``Ġ"`` literally and refuse every token with a space. Their
    vocabulary is byte-level (the pre-tokenizer says so), so the ByteLevel decoder alone
    is the right one.
    """
    backend = getattr(hf_tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise GrammarError("structured output needs a fast (Rust) tokenizer for this model")
    backend = copy.copy(backend)
    backend.no_padding()
    backend.no_truncation()
    spec = json.loads(backend.to_str())
    decoder = spec.get("decoder") or {}
    if decoder.get("type") == "Sequence" and _mentions_byte_level(spec.get("pre_tokenizer")):
        parts = [d for d in decoder.get("decoders", []) if d.get("type") == "ByteLevel"]
        if parts:
            spec["decoder"] = parts[0]
    return json.dumps(spec)


def _mentions_byte_level(part: Any) -> bool:
    if not isinstance(part, Mapping):
        return False
    if part.get("type") == "ByteLevel":
        return True
    return any(_mentions_byte_level(p) for p in part.get("pretokenizers", []))


def ll_tokenizer(
    hf_tokenizer: Any, vocab_size: int, eos_ids: Sequence[int]
) -> llguidance.LLTokenizer:
    """llguidance's view of the model's tokenizer, checked to read tokens as it does."""
    import llguidance

    try:
        tokenizer = llguidance.LLTokenizer(
            tokenizer_json(hf_tokenizer), n_vocab=vocab_size, eos_token=list(eos_ids) or None
        )
    except ValueError as exc:
        raise GrammarError(f"structured output cannot read this model's tokenizer: {exc}") from None
    ids = hf_tokenizer.encode(_PROBE, add_special_tokens=False)
    if tokenizer.decode_str(ids) != hf_tokenizer.decode(ids, clean_up_tokenization_spaces=False):
        raise GrammarError(
            "structured output is not available for this model: its tokenizer's bytes could "
            "not be mapped for the grammar engine"
        )
    return tokenizer


class GrammarCache:
    """Compiled grammars for one tokenizer, keyed by spec; hands out fresh matchers.

    Thread-safe: ``compile`` runs on request threads (via ``Engine.check``) and
    ``constraint`` on the engine thread. The llguidance tokenizer is built on first use.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, eos_ids: Sequence[int]) -> None:
        self._hf_tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._eos_ids = list(eos_ids)
        self._tokenizer: llguidance.LLTokenizer | None = None
        self._prototypes: OrderedDict[str, llguidance.LLMatcher] = OrderedDict()
        self._lock = threading.Lock()

    def _ll_tokenizer(self) -> llguidance.LLTokenizer:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = ll_tokenizer(self._hf_tokenizer, self._vocab_size, self._eos_ids)
            return self._tokenizer

    def compile(self, spec: StructuredSpec) -> llguidance.LLMatcher:
        """The pristine matcher for ``spec``, compiled on first sight; GrammarError if it
        cannot be."""
        key = spec_key(spec)
        with self._lock:
            found = self._prototypes.get(key)
            if found is not None:
                self._prototypes.move_to_end(key)
                return found
        import llguidance

        tokenizer = self._ll_tokenizer()
        grammar = grammar_text(spec)
        check_grammar(grammar, tokenizer)
        matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise GrammarError(_explain(matcher.get_error()))
        with self._lock:
            self._prototypes[key] = matcher
            while len(self._prototypes) > CACHE_SIZE:
                self._prototypes.popitem(last=False)
        return matcher

    def constraint(self, spec: StructuredSpec) -> Constraint:
        """A fresh matcher for one row (a copy of the compiled one: no recompilation)."""
        return Constraint(self.compile(spec).deep_copy(), self._vocab_size)
