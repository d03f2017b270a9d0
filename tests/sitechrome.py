"""Article pages built around any article, in five kinds of site chrome.

Used to measure extractors (bench/extractors.py) and to test ours against the
corpus: everything but `article` is chrome that must not reach a post.
"""

from __future__ import annotations

import html
import re

STYLES = 5
CHROME_TEXT = ("Another story worth reading", "Section 3", "Great post, thanks", "All rights reserved",
               "Get our best stories", "Sign up for our newsletter")
_NAV = "".join(f'<li><a href="/section/{i}">Section {i}</a></li>' for i in range(8))
_RELATED = "".join(f'<li><a href="/p/{i}">Another story worth reading number {i}</a></li>' for i in range(6))
_SHARE = ('<div class="share-bar"><a href="https://twitter.com/share">Tweet</a> '
          '<a href="https://facebook.com/share">Share</a> <a href="mailto:?">Email</a></div>')
_AD = ('<div class="ad-slot"><a href="https://ads.example/click">'
       '<img src="https://ads.example/banner.png"></a></div>')
_COMMENTS = ('<section id="comments"><h3>3 comments</h3><div class="comment"><p>Great post, thanks '
             'for sharing this with us!</p></div><div class="comment"><p>I disagree with the second '
             'point.</p></div></section>')
_FOOTER = ('<footer><p>Copyright 2024 Example Media. All rights reserved.</p>'
           '<a href="/privacy">Privacy</a> <a href="/terms">Terms</a></footer>')
_NEWSLETTER = ("<div class='newsletter'><h3>Subscribe</h3><p>Get our best stories every week.</p>"
               "<form><input type='email'><button>Sign up</button></form></div>")


def page(title: str, article: str, style: int) -> str:
    t = html.escape(title)
    head = f"<!doctype html><html><head><meta charset='utf-8'><title>{t} | Example</title></head>"
    if style == 0:  # a blog: <article>, sidebar after
        body = (f"<body><header><nav><ul>{_NAV}</ul></nav></header><main><article><h1>{t}</h1>"
                f"<div class='entry-content'>{article}</div>{_SHARE}</article>{_COMMENTS}</main>"
                f"<aside class='sidebar'><h3>Related</h3><ul>{_RELATED}</ul>{_AD}</aside>{_FOOTER}")
    elif style == 1:  # a news site: divs everywhere, related block in the content column
        body = (f"<body><div id='top'><div class='menu'>{_NAV}</div></div><div class='wrap'>"
                f"<div class='col-main'><h1 class='title'>{t}</h1><div class='meta'>By Staff</div>{_SHARE}"
                f"<div class='post-body'>{article}</div><div class='related-articles'><h3>Read next</h3>"
                f"<ul>{_RELATED}</ul></div></div><div class='col-side'>{_AD}</div></div>{_FOOTER}")
    elif style == 2:  # a magazine: sections, a newsletter box after the story
        body = (f"<body><nav>{_NAV}</nav><section class='story'><h1>{t}</h1><section class='story-body'>"
                f"{article}</section>{_NEWSLETTER}{_SHARE}</section>{_COMMENTS}{_FOOTER}")
    elif style == 3:  # a portal: ads and share bars interleaved inside the content column
        parts = re.split(r"(?<=</p>)", article, maxsplit=3)
        interleaved = parts[0] + _AD + "".join(parts[1:2]) + _SHARE + "".join(parts[2:])
        body = (f"<body><div class='header'>{_NAV}</div><div class='content'><h1>{t}</h1>{_SHARE}"
                f"{interleaved}<div class='author-bio'><p>The author writes about technology.</p></div>"
                f"<div class='related'><h3>Related</h3><ul>{_RELATED}</ul></div></div>{_COMMENTS}{_FOOTER}")
    else:  # generated class names: nothing to go by but the text
        body = (f"<body><div class='x1a'>{_NAV}</div><div class='x2b'><div class='x3c'><h1>{t}</h1>"
                f"{article}<div class='x4d'><ul>{_RELATED}</ul></div></div><div class='x5e'><p>Sign up "
                f"for our newsletter to get the best stories first.</p></div></div><div class='x6f'>"
                f"{_FOOTER}</div>")
    return f"{head}{body}</body></html>"
