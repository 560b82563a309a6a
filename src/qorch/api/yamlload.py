"""Reading YAML that users hand to qorch, with bounds on what a file may cost.

PyYAML's safe loader refuses arbitrary Python objects but bounds nothing else: aliases are
shared references, so a few hundred bytes can describe a document that expands to
gigabytes once serialised (a "billion laughs"); its composer recurses once per level of
nesting and so dies of RecursionError on deep input; and a large file is parsed at a few MB
a second. Every YAML file qorch reads from users goes through `load_file` /
`load_file_all`, which

- refuse a file over `Limits.max_bytes` before reading it (and read no more than that),
- decode it as strict UTF-8, naming the line and column of the first bad byte,
- and compose it under `Limits`: nesting depth, nodes and scalar characters counted as if
  every alias were expanded in place, aliases to collections, recursive aliases and
  duplicate mapping keys are refused while the events arrive, before any value is built.

Errors are `YamlLoadError`, a `yaml.YAMLError`, carrying the file, the document, the object
(`Kind/name`, when the document has said so before the problem) and the field path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

if TYPE_CHECKING:
    from pydantic import ValidationError

try:  # libyaml's parser: the same events as PyYAML's, several times faster.
    from yaml.cyaml import CParser as _Parser

    def _init_parser(loader: Any, text: str) -> None:
        _Parser.__init__(loader, text)

except ImportError:  # PyYAML built without libyaml

    class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        pass

    def _init_parser(loader: Any, text: str) -> None:
        yaml.reader.Reader.__init__(loader, text)
        yaml.scanner.Scanner.__init__(loader)
        yaml.parser.Parser.__init__(loader)


MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Limits:
    """What one YAML file may cost; the defaults are far above any real qorch manifest."""

    # The API server refuses request bodies over 3 MiB, so no manifest it accepts is larger.
    max_bytes: int = 3 * 1024 * 1024
    # Nesting levels, counting what aliases bring in; qorch's own kinds need about ten.
    max_depth: int = 64
    # Nodes and scalar characters, counting every alias as a copy of what it names.
    max_nodes: int = 100_000
    max_chars: int = 2 * max_bytes
    # Aliases to sequences or mappings: the only way a small document describes a large one.
    max_collection_aliases: int = 64


DEFAULT_LIMITS = Limits()


class YamlLoadError(yaml.YAMLError):
    """A YAML file that cannot be used; the message names file, document, object and field."""

    def __init__(
        self,
        source: str,
        problem: str,
        *,
        document: int | None = None,
        obj: str | None = None,
        field: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.source = source
        self.problem = problem
        self.document = document
        self.obj = obj
        self.field = field
        self.line = line
        self.column = column
        super().__init__(str(self))

    @property
    def label(self) -> str:
        """The file, and the document within it when the file has several."""
        return self.source if self.document is None else f"{self.source} (document {self.document})"

    def __str__(self) -> str:
        parts = [self.label]
        if self.obj:
            parts.append(self.obj)
        if self.field:
            parts.append(self.field)
        where = f"line {self.line}, column {self.column}: " if self.line is not None else ""
        return ": ".join(parts) + f": {where}{self.problem}"


def field_path(path: list[str | int | None]) -> str:
    """`spec.circuit.configMapRef`, `spec.nodes[1]`: as validation errors print it; the
    middle of a very deep path is left out."""
    parts = [p for p in path if p is not None]
    if len(parts) > 12:
        parts = [*parts[:6], "…", *parts[-4:]]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per error: the field's path and what is wrong, without pydantic's links."""
    out = []
    for err in exc.errors():
        loc = field_path([p for p in err["loc"] if p not in ("function-after",)])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "value_error":  # a validator's own words
            msg = msg.removeprefix("Value error, ")
        out.append(f"{loc}: {msg}" if loc else msg)
    return out


def errors_in_a_line(exc: ValidationError, most: int = 5) -> str:
    """`describe_errors`, the first `most` of them, in one line (a status, an event)."""
    errors = describe_errors(exc)
    more = [f"and {len(errors) - most} more"] if len(errors) > most else []
    return "; ".join([*errors[:most], *more])


class _LimitExceeded(Exception):
    def __init__(self, problem: str, node_or_event: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.mark = node_or_event.start_mark


class _Anchor:
    """Expanded size of an anchored node; `done` is False while it is still being composed."""

    __slots__ = ("chars", "done", "height", "mark", "nodes")

    def __init__(self, mark: Any) -> None:
        self.mark = mark
        self.done = False
        self.nodes = self.chars = self.height = 0


class _BoundedComposer(Composer):
    """PyYAML's Composer, rewritten to keep count of what the document would be with every
    alias expanded and to stop at the first limit crossed (before Python's recursion limit,
    as it recurses once per level). Path resolvers are not supported: SafeLoader has none."""

    limits: Limits

    def _start_counting(self, limits: Limits) -> None:
        self.limits = limits
        self.nodes = self.chars = self.collection_aliases = 0
        self.depth = self.deepest = 0
        self.sizes: dict[str, _Anchor] = {}
        self.path: list[str | int | None] = []
        self.kind: str | None = None
        self.name: str | None = None
        self.watch: int | None = None  # see _locate

    def compose_document(self) -> Node:
        self.sizes = {}
        self.kind = self.name = None
        self.path = []
        self.depth = self.deepest = 0
        return super().compose_document()  # type: ignore[no-any-return]

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.get_event()
        if event.__class__ is AliasEvent:
            return self._alias(event)
        level = self.depth + 1
        if level > self.deepest:
            if level > self.limits.max_depth:
                raise _LimitExceeded(f"nested more than {self.limits.max_depth} levels deep", event)
            self.deepest = level
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            self._check_size(event)
        anchor = event.anchor
        if anchor is None:
            return self._compose(event, level)
        if anchor in self.sizes:
            first = self.sizes[anchor].mark.line + 1
            raise _LimitExceeded(f"anchor &{anchor} defined twice (first at line {first})", event)
        # Measure the anchored node as it is composed, so that its aliases cost as much.
        size = self.sizes[anchor] = _Anchor(event.start_mark)
        nodes, chars, deepest = self.nodes - 1, self.chars, self.deepest
        self.deepest = level
        node = self._compose(event, level)
        size.nodes, size.chars = self.nodes - nodes, self.chars - chars
        size.height = self.deepest - self.depth
        size.done = True
        self.deepest = max(deepest, self.deepest)
        self.anchors[anchor] = node
        return node

    def _alias(self, event: Any) -> Node:
        size = self.sizes.get(event.anchor)
        if size is None:
            raise yaml.composer.ComposerError(
                None, None, f"found undefined alias {event.anchor!r}", event.start_mark
            )
        if not size.done:
            raise _LimitExceeded(f"alias *{event.anchor} refers to a node containing it", event)
        node: Node = self.anchors[event.anchor]
        limits = self.limits
        if not isinstance(node, ScalarNode):
            self.collection_aliases += 1
            if self.collection_aliases > limits.max_collection_aliases:
                raise _LimitExceeded(
                    f"more than {limits.max_collection_aliases} aliases to sequences or mappings",
                    event,
                )
        if self.depth + size.height > limits.max_depth:
            raise _LimitExceeded(
                f"alias *{event.anchor} nests more than {limits.max_depth} levels deep", event
            )
        self.deepest = max(self.deepest, self.depth + size.height)
        self.nodes += size.nodes
        self.chars += size.chars
        self._check_size(event)
        return node

    def _check_size(self, event: Any) -> None:
        if self.nodes > self.limits.max_nodes:
            raise _LimitExceeded(
                f"more than {self.limits.max_nodes} nodes (aliases counted as copies)", event
            )
        if self.chars > self.limits.max_chars:
            raise _LimitExceeded(
                f"more than {self.limits.max_chars} characters of values"
                " (aliases counted as copies)",
                event,
            )

    def _compose(self, event: Any, level: int) -> Node:
        cls = event.__class__
        tag = event.tag
        if cls is ScalarEvent:
            watch = self.watch
            if watch is not None and event.start_mark.index <= watch < event.end_mark.index:
                raise _Found
            value = event.value
            self.chars += len(value)
            if self.chars > self.limits.max_chars:
                self._check_size(event)
            if tag is None or tag == "!":
                tag = self.resolve(ScalarNode, value, event.implicit)
            return ScalarNode(tag, value, event.start_mark, event.end_mark, style=event.style)
        self.depth = level
        path = self.path
        node: SequenceNode | MappingNode
        if cls is SequenceStartEvent:
            if tag is None or tag == "!":
                tag = self.resolve(SequenceNode, None, event.implicit)
            node = SequenceNode(tag, [], event.start_mark, None, flow_style=event.flow_style)
            items = node.value
            path.append(0)
            while self.peek_event().__class__ is not SequenceEndEvent:
                path[-1] = len(items)
                items.append(self.compose_node(node, len(items)))
        else:  # MappingStartEvent: the parser emits nothing else here
            if tag is None or tag == "!":
                tag = self.resolve(MappingNode, None, event.implicit)
            node = MappingNode(tag, [], event.start_mark, None, flow_style=event.flow_style)
            pairs = node.value
            seen: dict[tuple[str, str], Any] = {}
            path.append(None)
            while self.peek_event().__class__ is not MappingEndEvent:
                key = self.compose_node(node, None)
                if isinstance(key, ScalarNode):
                    path[-1] = key.value
                    if key.tag != MERGE_TAG:
                        first = seen.setdefault((key.tag, key.value), key.start_mark)
                        if first is not key.start_mark:
                            raise _LimitExceeded(
                                f"duplicate key {key.value!r} (first at line {first.line + 1})",
                                key,
                            )
                else:
                    path[-1] = "<complex key>"
                value = self.compose_node(node, key)
                if level <= 2 and isinstance(value, ScalarNode):
                    self._note_identity(level, key.value, value.value)
                path[-1] = None
                pairs.append((key, value))
        path.pop()
        node.end_mark = self.get_event().end_mark
        self.depth = level - 1
        return node

    def _note_identity(self, level: int, key: Any, value: str) -> None:
        """Remember kind and metadata.name, so that later errors can name the object."""
        if level == 1 and key == "kind":
            self.kind = value
        elif level == 2 and key == "name" and self.path[0] == "metadata":
            self.name = value

    def described(self) -> str | None:
        if self.kind is None and self.name is None:
            return None
        return f"{self.kind or '<no kind>'}/{self.name or '<unnamed>'}"


class _Loader(_BoundedComposer, _Parser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    def __init__(self, text: str, limits: Limits) -> None:
        _init_parser(self, text)
        Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._start_counting(limits)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            # e.g. an int of more digits than Python converts, or the date 2024-13-45.
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value: {exc}", node.start_mark
            ) from None


def decode(data: bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """Strict UTF-8 (a leading byte-order mark allowed), naming where it is not."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")
        line_start = before.rfind("\n") + 1
        document, obj, field = _locate(data.decode("utf-8", "replace"), len(before), limits)
        raise YamlLoadError(
            source,
            f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} ({exc.reason})",
            document=document,
            obj=obj,
            field=field,
            line=before.count("\n") + 1,
            column=len(before) - line_start + 1,
        ) from None


class _Found(Exception):
    pass


def _locate(text: str, index: int, limits: Limits) -> tuple[int | None, str | None, str | None]:
    """Document, object and field of the scalar holding character `index`, where known."""
    try:
        loader = _Loader(text, limits)
    except yaml.YAMLError:
        return None, None, None
    loader.watch = index
    documents = 1
    try:
        while loader.check_node():
            loader.get_node()
            documents += 1
    except _Found:
        return documents, loader.described(), field_path(loader.path) or None
    except (yaml.YAMLError, _LimitExceeded, UnicodeError):
        pass
    finally:
        loader.dispose()
    return None, None, None


def read_text(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> str:
    """The file's text, refused before reading when over `limits.max_bytes`; OSError as is."""
    source = str(path)
    try:
        data = read_at_most(path, limits.max_bytes)
    except TooLarge as exc:
        raise YamlLoadError(source, _too_large(exc.size, limits)) from None
    return decode(data, source, limits)


class TooLarge(Exception):
    """A file over the limit `read_at_most` was given; `size` None when it was not read to
    its end (a pipe or a device has no size)."""

    def __init__(self, size: int | None) -> None:
        super().__init__(f"{size} bytes" if size is not None else "goes on past the limit")
        self.size = size


def read_at_most(path: str | os.PathLike[str], limit: int) -> bytes:
    """The file's bytes, refused before reading when its size is over `limit` (TooLarge;
    OSError as is)."""
    with open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > limit:
            raise TooLarge(size)
        # A pipe or device reports no size, and a file may grow: never read past the limit.
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(None)
    return data


def _too_large(size: int | None, limits: Limits) -> str:
    what = f"{size} bytes" if size is not None else "goes on past the limit"
    return f"{what}; the limit for a YAML file is {limits.max_bytes} bytes"


def loads_all(text: str, source: str, limits: Limits = DEFAULT_LIMITS) -> list[Any]:
    """Every document of `text` (None for an empty one), within `limits`."""
    if len(text) > limits.max_bytes:  # characters, a lower bound on the UTF-8 size
        raise YamlLoadError(source, _too_large(len(text), limits))
    documents: list[Any] = []
    try:
        loader = _Loader(text, limits)
    except yaml.reader.ReaderError as exc:  # the pure-Python reader checks characters first
        raise _unacceptable(exc, text, source) from None
    try:
        while loader.check_node():
            documents.append(loader.construct_document(loader.get_node()))
    except _LimitExceeded as exc:
        raise YamlLoadError(
            source,
            exc.problem,
            document=len(documents) + 1,
            obj=loader.described(),
            field=field_path(loader.path) or None,
            line=exc.mark.line + 1,
            column=exc.mark.column + 1,
        ) from None
    except yaml.MarkedYAMLError as exc:
        raise _marked(exc, source, len(documents) + 1, loader) from None
    except yaml.reader.ReaderError as exc:
        raise _unacceptable(exc, text, source) from None
    except (yaml.YAMLError, UnicodeError) as exc:
        raise YamlLoadError(source, f"not valid YAML: {exc}", document=len(documents) + 1) from None
    finally:
        loader.dispose()
    return documents


def loads(text: str, source: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """The one document of `text` (None when empty), within `limits`."""
    documents = loads_all(text, source, limits)
    if len(documents) > 1:
        raise YamlLoadError(source, f"expected one YAML document, found {len(documents)}")
    return documents[0] if documents else None


def load_file_all(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> list[Any]:
    """Every document of a file, within `limits`; YamlLoadError or OSError otherwise."""
    return loads_all(read_text(path, limits), str(path), limits)


def load_file(path: str | os.PathLike[str] | Path, limits: Limits = DEFAULT_LIMITS) -> Any:
    """The one document of a file, within `limits`; YamlLoadError or OSError otherwise."""
    return loads(read_text(path, limits), str(path), limits)


def _unacceptable(exc: yaml.reader.ReaderError, text: str, source: str) -> YamlLoadError:
    # Its position counts bytes under libyaml and characters without it; the character is
    # the first unacceptable one, so its first occurrence is where it is.
    known = isinstance(exc.character, int)
    index = text.find(chr(exc.character)) if known else -1
    line = column = None
    if index >= 0:
        line = text.count("\n", 0, index) + 1
        column = index - (text.rfind("\n", 0, index) + 1) + 1
    what = f"character U+{exc.character:04X}" if known else "a character"
    return YamlLoadError(source, f"not valid YAML: {what} is not allowed", line=line, column=column)


def _marked(
    exc: yaml.MarkedYAMLError, source: str, document: int, loader: _Loader
) -> YamlLoadError:
    mark = exc.problem_mark or exc.context_mark
    problem = " ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
    if exc.context_mark is not None and exc.problem_mark is not None and exc.context:
        problem = f"{exc.problem} ({exc.context} at line {exc.context_mark.line + 1})"
    return YamlLoadError(
        source,
        f"not valid YAML: {problem}",
        document=document,
        obj=loader.described(),
        field=field_path(loader.path) or None,
        line=mark.line + 1 if mark is not None else None,
        column=mark.column + 1 if mark is not None else None,
    )
