"""The metric names a PromQL expression reads: enough of PromQL for the
dashboard's and the alerts' expressions (no nested strings with braces)."""

from __future__ import annotations

import re

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    text = expr.replace("$__rate_interval", "5m")
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    names = set()
    for found in _IDENT.finditer(text):
        name, rest = found.group(), text[found.end():].lstrip()
        if rest.startswith("(") or name.lower() in KEYWORDS:
            continue  # a function or a keyword
        if re.fullmatch(r"\d+[smhdwy]?", name):
            continue
        names.add(name)
    return names
