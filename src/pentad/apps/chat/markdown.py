"""Chat message text: a safe Markdown subset rendered to HTML, and the mentions it contains.

The subset: paragraphs, single newlines as line breaks, **bold**, *italic*, ~~strike~~, `inline code`,
fenced code blocks, block quotes, bullet and numbered lists, links as [text](url) or <url>, and @mentions.
Everything else (raw HTML, headings, tables, link reference definitions) stays literal text, indented
code is an ordinary paragraph, and image syntax becomes a link, never an <img>. Bare URLs are not linked:
markdown-it's linkify needs linkify-it-py, which is not a dependency.

Two layers keep script out: markdown-it runs with raw HTML off and only accepts http, https and mailto
links, then nh3 (Ammonia) re-sanitises its output against a strict allow-list, so a bug in either layer
alone cannot let markup through.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

MENTION_CHANNEL_WORDS = frozenset({"channel", "here", "everyone"})

_LINK_PREFIXES = ("http://", "https://", "mailto:")
_HANDLE_MAX = 64
_HANDLE_RUN = re.compile(r"[A-Za-z0-9_.-]+")
_HANDLE = re.compile(r"[A-Za-z0-9_.-]{0,63}[A-Za-z0-9_-]")
# An '@' straight after one of these is part of an address or a word ("bob@example.com"), not a mention.
_NOT_BEFORE_MENTION = frozenset("_.-+@/")
_CODE_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,32}")


class _ChatMarkdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        # An allow-list, not markdown-it's deny-list: relative and protocol-relative links are refused too.
        # The URL arrives entity-decoded and percent-encoded, so obfuscated schemes never match a prefix.
        return url.lower().startswith(_LINK_PREFIXES)


def _mention_rule(state: StateInline, silent: bool) -> bool:  # noqa: FBT001 (markdown-it calls it so)
    pos = state.pos
    if state.src[pos] != "@":
        return False
    if pos > 0:
        before = state.src[pos - 1]
        if before.isalnum() or before in _NOT_BEFORE_MENTION:
            return False
    match = _HANDLE_RUN.match(state.src, pos + 1, state.posMax)
    if match is None:
        return False
    # Trailing dots are sentence punctuation ("ask @bob."), never part of a handle.
    handle = match.group().rstrip(".")
    if not handle or len(handle) > _HANDLE_MAX:
        return False
    if not silent:
        token = state.push("mention", "", 0)
        token.content = "@" + handle
        token.meta = {"handle": handle.lower()}
    state.pos = pos + 1 + len(handle)
    return True


def _render_mention(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    handle = escapeHtml(token.meta["handle"])
    return f'<span class="mention" data-handle="{handle}">{escapeHtml(token.content)}</span>'


def _build_markdown() -> MarkdownIt:
    # "zero" starts with every rule off, so nothing outside the subset can sneak in with a library upgrade.
    md = _ChatMarkdown("zero", {"html": False, "breaks": True, "linkify": False, "typographer": False})
    md.enable(
        [
            "fence",
            "blockquote",
            "list",
            "newline",
            "escape",
            "backticks",
            "strikethrough",
            "emphasis",
            "link",
            "autolink",
            "entity",
        ]
    )
    md.inline.ruler.after("text", "mention", _mention_rule)
    md.add_render_rule("mention", _render_mention)
    return md


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "class":
        if tag == "span":
            return value if value == "mention" else None
        return value if _CODE_LANGUAGE_CLASS.fullmatch(value) else None
    if attribute == "data-handle":
        return value if _HANDLE.fullmatch(value) else None
    return value


_MD = _build_markdown()
_CLEANER = nh3.Cleaner(
    tags={"p", "br", "strong", "em", "s", "code", "pre", "blockquote", "ul", "ol", "li", "a", "span"},
    clean_content_tags={"script", "style"},
    attributes={"a": {"href", "title"}, "ol": {"start"}, "code": {"class"}, "span": {"class", "data-handle"}},
    attribute_filter=_filter_attribute,
    strip_comments=True,
    link_rel="nofollow noopener noreferrer",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    url_schemes={"http", "https", "mailto"},
    url_relative="deny",
)


def render(text: str) -> str:
    """Safe HTML for a message's Markdown source."""
    if not text:
        return ""
    return _CLEANER.clean(_MD.render(text)).rstrip("\n")


def mentioned_handles(text: str) -> tuple[set[str], bool]:
    """(handles mentioned as @handle, lower-cased; whether @channel/@here/@everyone was used).

    Mentions inside inline code or code blocks do not count. A handle is [A-Za-z0-9_.-]{1,64} not ending
    in '.'"""
    handles: set[str] = set()
    channel = False
    if "@" not in text:
        return handles, channel
    for block in _MD.parse(text):
        for token in block.children or ():
            if token.type != "mention":
                continue
            handle: str = token.meta["handle"]
            if handle in MENTION_CHANNEL_WORDS:
                channel = True
            else:
                handles.add(handle)
    return handles, channel
