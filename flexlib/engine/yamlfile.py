"""YAML for params files and run configs: safe, with duplicate keys refused and errors as one line with file:line."""
from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import yaml


class YAMLError(ValueError):
    """A YAML text that cannot be read as a config; the message starts with file:line."""


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key repeated in one mapping (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, typing.Hashable):
                continue                                   # SafeLoader refuses it with its own message
            if key in seen:
                raise YAMLError(f"{key_node.start_mark.name}:{line}: duplicate key {key!r} (first on line "
                                f"{seen[key]}); each key may appear once per mapping")
            seen[key] = line
        return super().construct_mapping(node, deep)


def parse(text: str, source: str) -> Any:
    """The value of YAML ``text``; ``source`` names it in errors (a file path, or e.g. "--set train.epochs")."""
    loader = _StrictLoader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = " ".join(p for p in (err.context, err.problem) if p)
        raise YAMLError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as err:
        raise YAMLError(f"{source}: YAML error: {' '.join(str(err).split())}") from None
    finally:
        loader.dispose()


def read(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise YAMLError(f"{path}: not a text file (not UTF-8); expected a YAML params file") from None
    return parse(text, str(path))
