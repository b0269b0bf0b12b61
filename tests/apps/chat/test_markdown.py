"""Chat Markdown: the supported subset renders as expected, no payload gets script into the output, and
mentions are found where a reader sees them (not inside code)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from pentad.apps.chat.markdown import MENTION_CHANNEL_WORDS, mentioned_handles, render

ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "p": set(),
    "br": set(),
    "strong": set(),
    "em": set(),
    "s": set(),
    "code": {"class"},
    "pre": set(),
    "blockquote": set(),
    "ul": set(),
    "ol": {"start"},
    "li": set(),
    "a": {"href", "title", "rel", "target"},
    "span": {"class", "data-handle"},
}
LINK_REL = "nofollow noopener noreferrer"
SAFE_HREF_PREFIXES = ("http:", "https:", "mailto:")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    return parser.elements


def assert_safe(html: str) -> None:
    lowered = html.lower()
    for marker in ("<script", "<style", "<iframe", "<img", "<svg", "<math", "<form", "<input", "<object"):
        assert marker not in lowered, html
    for tag, attrs in elements(html):
        assert tag in ALLOWED_ATTRIBUTES, html
        assert set(attrs) <= ALLOWED_ATTRIBUTES[tag], html
        for name in attrs:
            assert not name.startswith("on"), html
            assert name != "style", html
        if tag == "a":
            href = attrs.get("href")
            assert href is not None, html
            assert href.lower().startswith(SAFE_HREF_PREFIXES), html
            assert attrs.get("rel") == LINK_REL, html
            assert attrs.get("target") == "_blank", html
        if tag == "span":
            assert attrs.get("class") == "mention", html
        if tag == "code" and "class" in attrs:
            assert (attrs["class"] or "").startswith("language-"), html


INJECTIONS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=JaVaScRiPt:alert(1)>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<iframe src="javascript:alert(1)"></iframe>',
    "<style>body{display:none}</style>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<form action=http://evil.example><input name=x autofocus onfocus=alert(1)></form>",
    '<a href="javascript:alert(1)">x</a>',
    "<!-- x --><script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](jav&#x61;script:alert(1))",
    "[x](&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x]( javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](java\tscript:alert(1))",
    "[x](java\nscript:alert(1))",
    "[x](\x01javascript:alert(1))",
    "[x](\x00javascript:alert(1))",
    "[x](java%0ascript:alert(1))",
    "[x](java\u200bscript:alert(1))",
    "[x](\uff4aavascript:alert(1))",
    "[x](\u202ejavascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](file:///etc/passwd)",
    "[x](//evil.example/x)",
    "[x](\\\\evil.example/x)",
    "[x](/relative/path)",
    "<javascript:alert(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "<vbscript:msgbox(1)>",
    '[x](http://a.example "a\\" onmouseover=\\"alert(1)")',
    "[x](http://a.example 'x\" onclick=alert(1) y=')",
    '[x](http://a.example/"onmouseover="alert(1))',
    '<https://a.example/"onmouseover=alert(1)>',
    "![x](http://a.example/a.png)",
    "![x](javascript:alert(1))",
    '![x" onerror="alert(1)](http://a.example/a.png)',
    "`<script>alert(1)</script>`",
    "```\n<script>alert(1)</script>\n```",
    '```html" onmouseover="alert(1)\n<b>x</b>\n```',
    "```<script>\nx\n```",
    "**<img src=x onerror=alert(1)>**",
    "[<img src=x onerror=alert(1)>](http://a.example)",
    "> - **[x](javascript:alert(1))**",
    "[x]: javascript:alert(1)\n\n[x]",
    '@"><script>alert(1)</script>',
    "@bob<svg/onload=alert(1)>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "<<script>script>alert(1)<</script>/script>",
    "\ufeff<script>alert(1)</script>",
    ">" * 200 + " deep",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_attempts_render_without_dangerous_markup(payload: str) -> None:
    assert_safe(render(payload))


@pytest.mark.parametrize(
    "payload",
    [
        "[x](javascript:alert(1))",
        "[x](jav&#x61;script:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x](data:text/html,hi)",
        "[x](vbscript:msgbox(1))",
        "[x](//evil.example)",
    ],
)
def test_dangerous_links_are_not_links(payload: str) -> None:
    assert "<a" not in render(payload)


def test_raw_html_is_shown_as_text() -> None:
    assert render("<b>hi</b>") == "<p>&lt;b&gt;hi&lt;/b&gt;</p>"


def test_plain_text_is_escaped() -> None:
    assert render("a < b && c > d") == "<p>a &lt; b &amp;&amp; c &gt; d</p>"


def test_inline_formatting() -> None:
    assert render("**bold** *italic* ~~gone~~ `x < y`") == (
        "<p><strong>bold</strong> <em>italic</em> <s>gone</s> <code>x &lt; y</code></p>"
    )


def test_single_newline_is_a_line_break() -> None:
    assert render("one\ntwo") == "<p>one<br>\ntwo</p>"


def test_blank_line_separates_paragraphs() -> None:
    assert render("one\n\ntwo") == "<p>one</p>\n<p>two</p>"


def test_link() -> None:
    assert render("[docs](https://example.com/a?b=1&c=2)") == (
        '<p><a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="nofollow noopener noreferrer">'
        "docs</a></p>"
    )


def test_link_title_is_kept_and_escaped() -> None:
    html = render('[x](https://example.com "say \\"hi\\"")')
    [(_, _), (tag, attrs)] = elements(html)
    assert tag == "a"
    assert attrs["title"] == 'say "hi"'
    assert_safe(html)


def test_autolinks() -> None:
    assert render("<https://example.com>") == (
        '<p><a href="https://example.com" target="_blank" rel="nofollow noopener noreferrer">'
        "https://example.com</a></p>"
    )
    assert render("<bob@example.com>") == (
        '<p><a href="mailto:bob@example.com" target="_blank" rel="nofollow noopener noreferrer">'
        "bob@example.com</a></p>"
    )


def test_every_link_gets_rel_and_target() -> None:
    html = render("[a](http://a.example) [b](mailto:b@b.example) <https://c.example>")
    anchors = [attrs for tag, attrs in elements(html) if tag == "a"]
    assert len(anchors) == 3
    assert all(a["rel"] == LINK_REL and a["target"] == "_blank" for a in anchors)


def test_image_syntax_becomes_a_link() -> None:
    html = render("![cat](https://example.com/cat.png)")
    assert "<img" not in html
    assert '<a href="https://example.com/cat.png"' in html
    assert ">cat</a>" in html


def test_bullet_list() -> None:
    assert render("- one\n- two") == "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"


def test_numbered_list() -> None:
    assert render("1. one\n2. two") == "<ol>\n<li>one</li>\n<li>two</li>\n</ol>"
    assert render("3. three") == '<ol start="3">\n<li>three</li>\n</ol>'


def test_block_quote() -> None:
    assert render("> quoted") == "<blockquote>\n<p>quoted</p>\n</blockquote>"


def test_fenced_code_keeps_content_literal() -> None:
    assert render("```python\nif a < b and **c**:\n```") == (
        '<pre><code class="language-python">if a &lt; b and **c**:\n</code></pre>'
    )


def test_fence_language_with_markup_is_dropped() -> None:
    assert render('```js"><b>\nx\n```') == "<pre><code>x\n</code></pre>"


def test_headings_and_tables_stay_text() -> None:
    assert render("# Title") == "<p># Title</p>"
    html = render("| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<table" not in html
    assert html.startswith("<p>| a | b |")


def test_empty_text() -> None:
    assert render("") == ""


def test_mention_renders_as_span() -> None:
    assert render("hi @Bob!") == '<p>hi <span class="mention" data-handle="bob">@Bob</span>!</p>'


def test_mention_inside_code_is_not_rendered_as_mention() -> None:
    assert "mention" not in render("`@bob`")
    assert "mention" not in render("```\n@bob\n```")


def test_email_address_is_not_a_mention() -> None:
    assert "mention" not in render("write to bob@example.com")
    assert mentioned_handles("write to bob@example.com") == (set(), False)


def test_mentioned_handles_basic() -> None:
    assert mentioned_handles("hey @alice and @bob_2 and @c.d-e") == ({"alice", "bob_2", "c.d-e"}, False)


def test_mentioned_handles_are_lower_cased_and_deduplicated() -> None:
    assert mentioned_handles("@Alice @ALICE @alice") == ({"alice"}, False)


@pytest.mark.parametrize(
    "text", ["@bob,", "@bob.", "@bob!", "@bob?", "@bob:", "(@bob)", "@bob...", "**@bob**", "@bob's"]
)
def test_trailing_punctuation_is_not_part_of_the_handle(text: str) -> None:
    assert mentioned_handles(text) == ({"bob"}, False)


def test_dots_inside_a_handle_are_kept() -> None:
    assert mentioned_handles("ping @bob.smith.") == ({"bob.smith"}, False)


def test_mentions_inside_code_do_not_count() -> None:
    text = "`@inline` and\n```\n@fenced @here\n```\nbut @real"
    assert mentioned_handles(text) == ({"real"}, False)


@pytest.mark.parametrize("word", sorted(MENTION_CHANNEL_WORDS))
def test_channel_words_set_the_flag(word: str) -> None:
    assert mentioned_handles(f"attention @{word}") == (set(), True)
    assert mentioned_handles(f"attention @{word.upper()}, now") == (set(), True)


def test_channel_word_in_code_does_not_set_the_flag() -> None:
    assert mentioned_handles("`@everyone`") == (set(), False)


def test_mentions_in_quotes_lists_and_link_text_count() -> None:
    text = "> @quoted\n\n- @listed\n\n[@linked](https://example.com)"
    assert mentioned_handles(text) == ({"quoted", "listed", "linked"}, False)


def test_escaped_at_is_not_a_mention() -> None:
    assert mentioned_handles("\\@bob") == (set(), False)


def test_handle_length_limit() -> None:
    assert mentioned_handles("@" + "a" * 64) == ({"a" * 64}, False)
    assert mentioned_handles("@" + "a" * 65) == (set(), False)


def test_no_mentions() -> None:
    assert mentioned_handles("") == (set(), False)
    assert mentioned_handles("just @ a lone at sign") == (set(), False)


def test_rendered_mentions_match_extracted_handles() -> None:
    text = "@Ann, `@code` @bob.\n> @carol @here"
    rendered = {attrs["data-handle"] for tag, attrs in elements(render(text)) if tag == "span"}
    handles, channel = mentioned_handles(text)
    assert channel
    assert rendered == {*handles, "here"}
