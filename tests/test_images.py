"""Images archived beside their posts, once, shown by Hugo; failures stay remote, reported."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import pytest

from ingest import sniff, verify
from ingest.images import Budget, download_url, file_stem, referer_for
from tests.conftest import SHARED, Project, front_matter, needs_hugo, needs_shared
from tests.loopback import Loopback

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
GIF = b"GIF89a" + b"\x00" * 64
WEBP = b"RIFF\x40\x00\x00\x00WEBPVP8 " + b"\x00" * 64
AVIF = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 64
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'
CDN = "https://img.36krcdn.com/hsossms/20260301"


@pytest.mark.parametrize(("body", "extension"), [
    (PNG, ".png"), (JPEG, ".jpg"), (GIF, ".gif"), (WEBP, ".webp"), (AVIF, ".avif"),
    (SVG, None), (b"<html><body>not found</body></html>", None), (b"", None)])
def test_image_type_comes_from_the_bytes(body: bytes, extension: str | None) -> None:
    assert sniff.image_type(body) == extension


def test_repeated_oss_operations_collapse_and_names_are_stable() -> None:
    twice = f"{CDN}/v2_a@000_img_000?x-oss-process=image/format,jpg/interlace,1/format,jpg/interlace,1"
    once = f"{CDN}/v2_a@000_img_000?x-oss-process=image/format,jpg/interlace,1"
    assert download_url(twice) == once and download_url(once) == once
    assert file_stem(twice) == file_stem(once) and len(file_stem(once)) == 16
    assert download_url("https://x.example/a.png?w=1") == "https://x.example/a.png?w=1"


def test_referer_is_one_the_cdn_accepts() -> None:
    assert referer_for(f"{CDN}/v2_a", "https://www.36kr.com/p/1") == "https://36kr.com/"
    assert referer_for("http://a.36krcnd.com/x.jpg", None) == "https://36kr.com/"
    assert referer_for("https://cdn.example/a.png", "https://blog.example/p") == "https://blog.example/p"


def article_feed(items: dict[str, str]) -> str:
    body = "".join(
        f"<item><title>{title}</title><link>https://blog.example/{title}</link>"
        f"<pubDate>Mon, 02 Mar 2026 08:00:00 GMT</pubDate><description><![CDATA[{html}]]></description>"
        "</item>" for title, html in items.items())
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{body}</channel></rss>'


def paragraphs(n: int) -> str:
    return "".join(f"<p>Paragraph {i} of an article with images, long enough to be whole.</p>"
                   for i in range(n))


@pytest.fixture
def gallery(project: Project, server: Loopback) -> Loopback:
    server.route("/img/a.png", PNG, content_type="image/png")
    server.route("/img/b", JPEG, content_type="application/octet-stream")  # no extension, no type
    server.route("/img/c.webp", WEBP, content_type="image/webp")
    server.route("/img/shared", GIF, content_type="image/gif")
    server.route("/img/html", b"<html><body>Not here</body></html>", content_type="text/html")
    server.route("/img/big.png", PNG + b"\x00" * 50_000, content_type="image/png")
    server.route("/img/logo.svg", SVG, content_type="image/svg+xml")
    first = (f'<p><img src="https://cdn.example/img/a.png"></p>{paragraphs(3)}'
             '<p><img alt="b" src="https://cdn.example/img/b" '
             'srcset="https://cdn.example/img/b 1x, https://cdn.example/img/c.webp 2x"></p>'
             '<p><img src="https://cdn.example/img/missing.png"></p>'
             '<p><img src="https://cdn.example/img/html"></p>'
             '<p><img src="https://cdn.example/img/big.png"></p>'
             '<p><img src="https://cdn.example/img/logo.svg"></p>'
             '<p><img src="https://cdn.example/img/shared"></p>')
    second = f'{paragraphs(3)}<p><img src="https://cdn.example/img/shared"></p>'
    # With validators, as real feeds have: a 304 must not end the retries of failed images.
    server.route("/feed", article_feed({"first": first, "second": second}), etag='"gallery-1"')
    project.configure([{"name": "blog", "url": "https://blog.example/feed"}], images=True,
                      http={"max_image_bytes": 10_000, "attempts": 1})
    return server


def image_hits(server: Loopback) -> list[str]:
    return [r.path for r in server.requests if r.path.startswith("/img/")]


def test_images_are_archived_beside_the_post(project: Project, gallery: Loopback) -> None:
    code, out = project.run(client=gallery.client())
    assert code == 0, out  # image failures are reported, not failures of the run
    posts = project.posts()
    first = project.archive / next(p for p in posts if "/first-" in p)
    folder = first.parent
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "index.md"}
    expected = {f"{file_stem(f'https://cdn.example/img/{name}')}{extension}": body
                for name, extension, body in (("a.png", ".png", PNG), ("b", ".jpg", JPEG),
                                              ("c.webp", ".webp", WEBP), ("shared", ".gif", GIF))}
    assert files == expected  # named by URL hash, typed by magic bytes
    _, body = front_matter(posts[first.relative_to(project.archive).as_posix()])
    local = re.findall(r'src="([0-9a-f]{16}\.\w+)"', body)
    assert len(local) == 3 and all((folder / name).is_file() for name in local)
    srcset = re.search(r'srcset="([^"]+)"', body)
    assert srcset and re.fullmatch(r"[0-9a-f]{16}\.jpg 1x, [0-9a-f]{16}\.webp 2x", srcset.group(1))
    for remote in ("missing.png", "html", "big.png", "logo.svg"):
        assert f"https://cdn.example/img/{remote}" in body
    assert "4 of 8 images kept remote" in out
    assert "images: 4 downloaded, 1 already archived, 4 kept remote" in out


def test_the_same_image_in_two_posts_is_downloaded_once(project: Project, gallery: Loopback) -> None:
    project.run(client=gallery.client())
    assert image_hits(gallery).count("/img/shared") == 1
    holders = list(project.archive.rglob("*.gif"))
    assert len(holders) == 2 and holders[0].read_bytes() == holders[1].read_bytes() == GIF


def test_reruns_download_nothing_and_failures_are_retried_boundedly(project: Project,
                                                                     gallery: Loopback) -> None:
    client = gallery.client()
    project.run(client=client)
    good = {"/img/a.png", "/img/b", "/img/c.webp", "/img/shared"}
    assert good <= set(image_hits(gallery))
    for _ in range(6):
        project.clock.advance(hours=1)
        project.run(client=client)
    hits = image_hits(gallery)
    assert all(hits.count(path) == 1 for path in good)  # never downloaded again
    assert hits.count("/img/missing.png") == 5  # tried 5 times in all, then left remote
    assert hits.count("/img/html") == 5


def test_a_failed_image_that_comes_back_is_archived_later(project: Project, gallery: Loopback) -> None:
    client = gallery.client()
    project.run(client=client)
    gallery.route("/img/missing.png", PNG, content_type="image/png")
    project.clock.advance(hours=1)
    code, out = project.run(client=client)
    assert code == 0 and "1 updated" in out
    _, body = front_matter(next(t for p, t in project.posts().items() if "/first-" in p))
    assert "missing.png" not in body


def test_referer_and_accept_headers(project: Project, server: Loopback) -> None:
    server.route("/hsossms/20260301/v2_a@000_img_000", JPEG)
    server.route("/img/a.png", PNG)
    html = (f'{paragraphs(3)}<p><img src="{CDN}/v2_a@000_img_000?x-oss-process=image/format,jpg">'
            '<img src="https://cdn.example/img/a.png"></p>')
    server.route("/feed", article_feed({"one": html}))
    project.configure([{"name": "blog", "url": "https://blog.example/feed"}], images=True)
    assert project.run(client=server.client())[0] == 0
    cdn = next(r for r in server.requests if r.path.startswith("/hsossms"))
    other = next(r for r in server.requests if r.path == "/img/a.png")
    assert cdn.headers["referer"] == "https://36kr.com/" and cdn.headers["host"] == "img.36krcdn.com"
    assert other.headers["referer"] == "https://blog.example/one"
    assert "image/avif" in other.headers["accept"]


def test_article_cover_goes_to_the_front_matter(project: Project, server: Loopback) -> None:
    server.route("/img/a.png", PNG)
    server.route("/feed", article_feed({"one": f'<p><img src="https://cdn.example/img/a.png"></p>{paragraphs(3)}'}))
    project.configure([{"name": "blog", "url": "https://blog.example/feed"}], images=True, cover="article")
    project.run(client=server.client())
    meta, _ = front_matter(next(iter(project.posts().values())))
    assert meta["cover"] == {"image": file_stem("https://cdn.example/img/a.png") + ".png", "alt": "one",
                             "relative": True}


def test_an_article_cover_with_a_query_is_downloaded_once(project: Project, server: Loopback) -> None:
    server.route("/img/a.png", PNG)
    src = "https://cdn.example/img/a.png?w=1&amp;h=2"  # as the HTML writes it
    server.route("/feed", article_feed({"one": f'<p><img src="{src}"></p>{paragraphs(3)}'}))
    project.configure([{"name": "blog", "url": "https://blog.example/feed"}], images=True, cover="article")
    project.run(client=server.client())
    assert [r.path for r in server.requests if r.path.startswith("/img/")] == ["/img/a.png?w=1&h=2"]
    meta, _ = front_matter(next(iter(project.posts().values())))
    assert meta["cover"]["image"] == file_stem("https://cdn.example/img/a.png?w=1&h=2") + ".png"


@needs_hugo
def test_hugo_resolves_every_local_image(project: Project, gallery: Loopback) -> None:
    project.run(client=gallery.client())
    assert verify.verify(project.archive, hugo=True) == []


@needs_shared
def test_the_golden_sample_becomes_a_bundle_of_22_local_images(project: Project, server: Loopback) -> None:
    feed = (SHARED / "golden" / "feed.xml").read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', feed)
    for n, src in enumerate(sources):
        server.route(src.split("https://img.36krcdn.com")[1].split("?")[0], JPEG + bytes([n]))
    server.route("/feed", feed)
    project.configure([{"name": "36krai", "url": "https://www.36kr.com/feed"}], images=True)
    assert project.run(client=server.client())[0] == 0
    ((path, text),) = project.posts().items()
    folder = (project.archive / path).parent
    assert len([p for p in folder.iterdir() if p.suffix == ".jpg"]) == 22
    expected = (SHARED / "golden" / "expected.md").read_text(encoding="utf-8")
    for src in sources:
        expected = expected.replace(src, file_stem(src) + ".jpg")
    assert front_matter(text)[1] == front_matter(expected)[1]  # only the srcs differ
    requests = len(server.requests)
    project.clock.advance(hours=1)
    assert project.run(client=server.client())[0] == 0
    assert len(server.requests) == requests + 1  # the feed (a 200: no validators), and no image
    if SHARED.joinpath("hugo-site").is_dir():
        assert verify.verify(project.archive, hugo=True, site=SHARED / "hugo-site") == []


def photo(width: int, height: int, kind: str = "JPEG") -> bytes:
    """A photo-like image (noise compresses as badly as a photo does)."""
    from PIL import Image

    image = Image.frombytes("RGB", (width, height), random.Random(width).randbytes(width * height * 3))
    out = io.BytesIO()
    image.save(out, kind, quality=90) if kind == "JPEG" else image.save(out, kind)
    return out.getvalue()


def size_of(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


@pytest.mark.parametrize("image_format", ["original", "webp"])
def test_a_width_budget_stores_wide_images_scaled_down(project: Project, server: Loopback,
                                                       image_format: str) -> None:
    wide, small = photo(2400, 1600), photo(800, 600)
    server.route("/hsossms/20260301/wide", wide, content_type="image/jpeg")
    server.route("/img/wide.jpg", wide, content_type="image/jpeg")
    server.route("/img/small.jpg", small, content_type="image/jpeg")
    cdn = f"{CDN}/wide?x-oss-process=image/format,jpg/interlace,1"
    server.route("/feed", article_feed({"one": f'<p><img src="{cdn}"></p>{paragraphs(3)}'
                                               '<p><img src="https://cdn.example/img/wide.jpg"></p>'
                                               '<p><img src="https://cdn.example/img/small.jpg"></p>'}))
    project.configure([{"name": "blog", "url": "https://blog.example/feed"}], images=True,
                      image_max_width=1200, image_format=image_format)
    assert project.run(client=server.client())[0] == 0
    # 36kr's CDN is asked for the width wanted, before its own operations.
    asked = next(r.path for r in server.requests if r.path.startswith("/hsossms/"))
    assert "x-oss-process=image/resize,w_1200/format,jpg/interlace,1" in asked
    folder = next(project.archive.glob("*/*/*/*/index.md")).parent
    files = {p.name: p for p in folder.iterdir() if p.name != "index.md"}
    extension = ".webp" if image_format == "webp" else ".jpg"
    for url in (cdn, "https://cdn.example/img/wide.jpg"):
        stored = files[file_stem(url) + extension]
        assert size_of(stored) == (1200, 800) and stored.stat().st_size < len(wide)
    small_file = files[file_stem("https://cdn.example/img/small.jpg") + extension]
    assert size_of(small_file) == (800, 600)
    if image_format == "original":
        assert small_file.read_bytes() == small  # within the budget: the bytes as they came
    text = (folder / "index.md").read_text()
    assert all(f'src="{name}"' in text for name in files)
    kept = sum(p.stat().st_size for p in files.values())
    status = next(line for line in project.run("status")[1].splitlines() if line.startswith("blog"))
    assert status.endswith(f" {kept / 1_000_000:.1f} MB")  # images/post: what the budget keeps down


@pytest.mark.parametrize("body", [GIF, b"\xff\xd8\xff\xe0 not really a JPEG"], ids=["gif", "corrupt"])
def test_what_pillow_cannot_fit_is_kept_as_it_came(body: bytes) -> None:
    extension = ".gif" if body == GIF else ".jpg"
    assert Budget(600, webp=True).fit(body, extension) == (body, extension)


def test_an_animation_is_kept_as_it_came() -> None:
    from PIL import Image

    frames = [Image.new("RGB", (1600, 100), color) for color in ("red", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    assert Budget(600).fit(out.getvalue(), ".gif") == (out.getvalue(), ".gif")


def test_a_photo_taken_sideways_is_scaled_upright() -> None:
    from PIL import Image

    image = Image.frombytes("RGB", (1600, 900), random.Random(1).randbytes(1600 * 900 * 3))
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show it rotated by 90°
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=90)
    data, extension = Budget(600).fit(out.getvalue(), ".jpg")
    with Image.open(io.BytesIO(data)) as fitted:
        assert (extension, fitted.size) == (".jpg", (600, 1067))  # 900 × 1600 as shown, scaled
