"""Slack's documented Block Kit limits, as a checker of the messages flawless posts.

From Slack's reference of blocks and composition objects: a message has at most 50 blocks;
a header holds plain_text of at most 150 characters; a section holds a text of at most 3,000
characters and/or at most 10 fields of at most 2,000; an actions block at most 25 elements,
a button a plain_text label of at most 75 characters and a URL of at most 3,000; a context
block at most 10 elements. Text objects are ``plain_text`` or ``mrkdwn``.
"""

from __future__ import annotations

from typing import Any


def _text(value: Any, where: str, limit: int, kinds: tuple[str, ...]) -> list[str]:
    if not isinstance(value, dict) or value.get("type") not in kinds:
        return [f"{where}: a text object of type {'/'.join(kinds)} is required"]
    text = value.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}: text must be a non-empty string"]
    if len(text) > limit:
        return [f"{where}: {len(text)} characters, more than {limit}"]
    unknown = set(value) - {"type", "text", "emoji", "verbatim"}
    return [f"{where}: unknown keys {sorted(unknown)}"] if unknown else []


def _block(block: Any, where: str) -> list[str]:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "header":
        return _text(block.get("text"), f"{where}.text", 150, ("plain_text",))
    if kind == "section":
        problems = []
        if "text" not in block and "fields" not in block:
            problems.append(f"{where}: a section needs text or fields")
        if "text" in block:
            problems += _text(block["text"], f"{where}.text", 3000, ("plain_text", "mrkdwn"))
        fields = block.get("fields", [])
        if not isinstance(fields, list) or len(fields) > 10:
            problems.append(f"{where}.fields: at most 10")
        for index, item in enumerate(fields if isinstance(fields, list) else []):
            problems += _text(item, f"{where}.fields[{index}]", 2000, ("plain_text", "mrkdwn"))
        return problems
    if kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
            return [f"{where}.elements: 1 to 25 elements"]
        problems = []
        for index, element in enumerate(elements):
            here = f"{where}.elements[{index}]"
            if element.get("type") != "button":
                problems.append(f"{here}: only buttons are used")
                continue
            problems += _text(element.get("text"), f"{here}.text", 75, ("plain_text",))
            url = element.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")) \
                    or len(url) > 3000:
                problems.append(f"{here}.url: an http(s) URL of at most 3000 characters")
        return problems
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            return [f"{where}.elements: 1 to 10 elements"]
        return [problem for index, element in enumerate(elements)
                for problem in _text(element, f"{where}.elements[{index}]", 3000,
                                     ("plain_text", "mrkdwn"))]
    return [f"{where}: unknown block type {kind!r}"]


def block_kit_problems(message: Any) -> list[str]:
    """Every way ``message`` breaks Slack's documented shape of a message payload."""
    if not isinstance(message, dict):
        return ["a message is a JSON object"]
    problems = []
    if not isinstance(message.get("text"), str) or not message["text"]:
        problems.append("text: the fallback text is required with blocks")
    blocks = message.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return problems + ["blocks: 1 to 50 blocks"]
    for index, block in enumerate(blocks):
        problems += _block(block, f"blocks[{index}]")
    return problems
