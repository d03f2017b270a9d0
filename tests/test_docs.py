"""The commands users copy, run as written: the README's shell lines, the crontab
line, the scheduled workflow's steps and the PaperMod recipe.

Each is read from its document at test time, never copied here, so a document
edited into a broken command fails these tests. They run as users run them: in
a shell, in a project folder whose config.yaml points at a feed server on
127.0.0.1, with `ingest` found on PATH the way each document expects it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests import feedgen
from tests.conftest import SHARED, Project, front_matter, needs_hugo
from tests.loopback import Loopback
from tests.test_backfill import ITEMS, article_page, gateway

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
WORKFLOW = yaml.safe_load((ROOT / ".github" / "workflows" / "ingest.yml").read_text(encoding="utf-8"))
VENV = Path(sys.prefix)  # where `make install` (or the workflow's pip) put the `ingest` script
BARE_PATH = "/usr/bin:/bin"  # cron's PATH


def blocks(language: str = "", text: str = README) -> list[str]:
    """The fenced code blocks of `language` ("" for unlabelled ones) in `text`."""
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


def section(title: str) -> str:
    start = README.index(f"\n{title}\n")
    following = re.search(r"^#{1,3} ", README[start + len(title) + 2:], flags=re.M)
    return README[start:start + len(title) + 2 + (following.start() if following else len(README))]


def shell(command: str, cwd: Path, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-eo", "pipefail", "-c", command], cwd=cwd, capture_output=True,
                          text=True, timeout=300, check=False,
                          env={"PATH": path, "HOME": str(cwd), "LANG": "C.UTF-8", **env})


def on_path() -> str:
    return f"{VENV / 'bin'}:{BARE_PATH}"


@pytest.fixture
def site36(project: Project, server: Loopback) -> Project:
    """A project whose feeds, 36kr site and gateway are on 127.0.0.1: one good feed."""
    server.route("/feed", feedgen.feed(2))
    server.route("/api/mis/nav/ifm/subNav/flow", handler=gateway)
    for item in ITEMS:
        if item["itemType"]:
            server.route(f"/p/{item['itemId']}", article_page(server, int(item["itemId"])),
                         content_type="text/html")
    project.configure([{"name": "36kr", "url": server.url("/feed")}],
                      sources={"36kr": {"site": server.base, "gateway": server.base, "delay": 0.001}})
    return project


def test_the_setup_lines_name_real_make_targets() -> None:
    # `make run` archives the real 36kr (no network here) and `make test` runs this
    # very suite, so neither runs inside it; `make -n` checks that both resolve.
    setup = blocks("sh")[0]
    commands = [line.split("#")[0].strip() for line in setup.splitlines()]
    assert commands == ["make run", "make test"]
    for command in commands:
        done = subprocess.run([*command.split(), "-n"], cwd=ROOT, capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stderr


def test_the_backfill_lines_run_as_written(site36: Project, server: Loopback) -> None:
    # An article the channel does not list, so that the URL list has one to archive.
    server.route("/p/3999000000000000", article_page(server, int(ITEMS[0]["itemId"])),
                 content_type="text/html")
    (site36.root / "missing.txt").write_text("https://36kr.com/p/3999000000000000\n")
    (site36.root / "snapshots").mkdir()
    (site36.root / "snapshots" / "36kr-2023-11-10.xml").write_bytes(feedgen.feed(3, first=10))
    lines = [line for line in blocks("sh", section("## Backfill"))[0].splitlines()
             if line.startswith("ingest backfill")]
    assert len(lines) == 4
    for line in lines:
        done = shell(line, site36.root, on_path())
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
    categories = {front_matter(text)[0]["categories"][0] for text in site36.posts().values()}
    assert categories == {"36krai", "36kr", "backfill"}


@needs_hugo
def test_every_inline_ingest_command_runs(site36: Project) -> None:
    # Not run here: commands with placeholders (…, FILE, YOUR_SITE), whose lines
    # are shown whole elsewhere; `--site site`, which needs the PaperMod recipe's
    # site and runs in its test; and the bare names of commands that need arguments,
    # whose lines run in the tests of their sections (Backfill, Searching).
    spans = re.findall(r"`((?:ingest|python -m ingest) [^`]+)`", README)
    runnable = [s for s in dict.fromkeys(spans) if not re.search(r"…|[A-Z]{2}|--site|\[", s)
                and s not in ("ingest backfill", "ingest search")]
    assert {"ingest status", "ingest reindex", "ingest run --force", "ingest verify --hugo"} <= set(runnable)
    for command in runnable:
        done = shell(command, site36.root, on_path())
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "error:" not in done.stderr, command


def test_the_search_lines_run_as_written(site36: Project) -> None:
    assert site36.run()[0] == 0
    lines = [line for line in blocks("sh", section("## Searching"))[0].splitlines()
             if line.startswith("ingest search")]
    assert len(lines) == 4
    for line in lines:  # 1 is "no post holds it": this archive has only the feed's two posts
        done = shell(line, site36.root, on_path())
        assert done.returncode in (0, 1) and done.stderr == "", (line, done.stderr)
    done = shell("ingest search 老街区改造", site36.root, on_path())
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2


def crontab_line() -> str:
    line = next(line for block in blocks() for line in block.splitlines() if line.startswith("*/30 "))
    return line.split(maxsplit=5)[5]


@pytest.mark.parametrize("gone", [False, True], ids=["all-fine", "one-feed-gone"])
def test_the_crontab_line_runs_as_written(site36: Project, server: Loopback, gone: bool) -> None:
    if gone:
        site36.configure([{"name": "36kr", "url": server.url("/feed")},
                          {"name": "gone", "url": server.url("/gone.xml")}])
    (site36.root / ".venv").symlink_to(VENV)
    command = crontab_line().replace("/path/to/ingest", str(site36.root))
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=300,
                          check=False, env={"PATH": BARE_PATH})
    assert done.returncode == (1 if gone else 0), done
    assert len(site36.posts()) == 2
    log = (site36.root / "ingest.log").read_text(encoding="utf-8")
    if gone:  # --quiet: the problem, and nothing about the feed that is fine
        assert "gone" in log and "/gone.xml" in log and "404" in log and "Traceback" not in log
        assert not re.search(r"^36kr\b", log, flags=re.M)
    else:
        assert log == ""


def workflow_steps() -> Iterator[tuple[str, str]]:
    for step in WORKFLOW["jobs"]["ingest"]["steps"]:
        if "run" in step:
            yield step.get("name", ""), step["run"]


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          env={"PATH": BARE_PATH, "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
                               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"})
    return done.stdout


def test_the_workflow_steps_run_as_written(tmp_path: Path, server: Loopback) -> None:
    """A checkout with one good and one gone feed: the ingest step succeeds with a
    warning, and the commit step pushes the new post."""
    server.route("/feed", feedgen.feed(1))
    remote, checkout = tmp_path / "remote.git", tmp_path / "checkout"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    git(tmp_path, "clone", "--quiet", str(remote), str(checkout))
    project = Project(checkout)
    project.configure([{"name": "36kr", "url": server.url("/feed")},
                       {"name": "gone", "url": server.url("/gone.xml")}])
    git(checkout, "add", "config.yaml")
    git(checkout, "commit", "--quiet", "-m", "config")
    git(checkout, "push", "--quiet", "-u", "origin", "main")

    steps = dict(workflow_steps())
    assert {"Install ingest", "Archive the feeds", "Commit new and changed posts"} <= set(steps)
    # "Install ingest" is pip into the runner's Python: here, the venv's own install.
    output, summary = tmp_path / "github_output", tmp_path / "step_summary"
    for name in ("Archive the feeds", "Commit new and changed posts"):
        done = shell(steps[name], checkout, on_path(), GITHUB_OUTPUT=str(output),
                     GITHUB_STEP_SUMMARY=str(summary))
        assert done.returncode == 0, (name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        if name == "Archive the feeds":
            assert output.read_text() == "code=1\n"
            assert "::warning" in done.stdout and "gone" in done.stdout
    assert (checkout / "report.json").is_file()
    log = git(remote, "log", "--format=%s", "main")
    assert log.splitlines()[0] == "archive: 1 new, 0 updated posts"
    tree = git(remote, "ls-tree", "-r", "--name-only", "main").split()
    assert any(p.endswith("/index.md") for p in tree)
    assert any(p.startswith("sources/posts/") for p in tree)
    assert any(p.startswith("sources/objects/") for p in tree)
    # What was committed is enough to make the posts again: a clone, no state, no server.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(remote), str(clone))
    posts = Project(clone).snapshot()
    for post in clone.glob("archive/*/*/*/*/index.md"):
        post.unlink()
    server.stop()
    code, out = Project(clone).run("rebuild")
    assert code == 0 and Project(clone).snapshot() == posts, out


def theme_mirror(folder: Path) -> dict[str, str]:
    """git settings under which the recipe's clone URL is a local copy of
    ../shared/themes/PaperMod, with its commit reachable by the name 87df659c."""
    repo = folder / "PaperMod"
    shutil.copytree(SHARED / "themes" / "PaperMod", repo)
    git(repo, "init", "--quiet", "--initial-branch=master")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "PaperMod at 87df659c")
    git(repo, "branch", "87df659c")
    config = folder / "gitconfig"
    config.write_text(f'[url "{repo}"]\n\tinsteadOf = https://github.com/adityatelange/hugo-PaperMod\n'
                      "[advice]\n\tdetachedHead = false\n")
    return {"GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1"}


@needs_hugo
@pytest.mark.skipif(not (SHARED / "themes" / "PaperMod").is_dir(),
                    reason=f"{SHARED}/themes/PaperMod is absent: the recipe's theme comes from there")
def test_the_papermod_recipe_lists_the_posts_and_verify_passes(site36: Project) -> None:
    assert site36.run()[0] == 0
    recipe = blocks("sh", section("## Viewing the archive"))[0]
    assert recipe.startswith("mkdir site") and "hugo server" in recipe
    env = {"PATH": on_path(), "HOME": str(site36.root), **theme_mirror(site36.root / ".mirror")}
    hugo = subprocess.Popen(["bash", "-e", "-c", recipe], cwd=site36.root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = served(hugo)
        home, search_page = (httpx.get(base + path, timeout=30).text for path in ("", "search/"))
        index = httpx.get(base + "index.json", timeout=30).json()
    finally:
        os.killpg(hugo.pid, signal.SIGTERM)
        hugo.wait(timeout=30)
    titles = [front_matter(text)[0]["title"] for text in site36.posts().values()]
    assert all(title in home for title in titles) and "searchInput" in search_page
    assert sorted(page["title"] for page in index) == sorted(titles)  # once each, pages visited
    if shutil.which("node"):  # the page's own search: Fuse.js with the recipe's options
        options = tomllib.loads((site36.root / "site" / "hugo.toml").read_text())["params"]["fuseOpts"]
        assert fuse(index, "老街区改造的第1天", options) == [t for t in titles if "第1天" in t]
        assert fuse(index, "老街区改造的第9天", options) == []
    verify = re.search(r"`(ingest verify --hugo --site site)`", section("## Viewing the archive"))
    assert verify is not None
    done = shell(verify.group(1), site36.root, on_path())
    assert (done.returncode, done.stdout) == (0, "2 posts built with Hugo and compared: no problems\n"), \
        done.stderr
    # The mistake verify exists for: a site that drops raw HTML, as Hugo does by default.
    config = site36.root / "site" / "hugo.toml"
    config.write_text(config.read_text().replace("unsafe = true", "unsafe = false"))
    done = shell(verify.group(1), site36.root, on_path())
    assert done.returncode == 1 and done.stdout.count("does not hold the article") == 2, done.stdout


def fuse(index: list[dict[str, str]], query: str, options: dict[str, object]) -> list[str]:
    """The titles PaperMod's search page shows for `query` (fastsearch.js's Fuse call)."""
    script = ("const Fuse = require(process.argv[1]); const [index, query, o] = JSON.parse(process.argv[2]);"
              "const fuse = new Fuse(index, {threshold: o.threshold, ignoreLocation: o.ignorelocation,"
              " keys: o.keys});"
              "console.log(JSON.stringify(fuse.search(query).map(r => r.item.title)));")
    library = SHARED / "themes" / "PaperMod" / "assets" / "js" / "fuse.basic.min.js"
    done = subprocess.run(["node", "-e", script, str(library), json.dumps([index, query, options])],
                          capture_output=True, text=True, timeout=60, check=True)
    return list(json.loads(done.stdout))


def served(hugo: subprocess.Popen[str]) -> str:
    """The base URL `hugo server` says it serves, once it does."""
    assert hugo.stdout is not None
    deadline, seen = time.monotonic() + 120, []
    while time.monotonic() < deadline:
        line = hugo.stdout.readline()
        seen.append(line)
        served = re.search(r"Web Server is available at (?:http:)?//(\S+?)/? ", line)
        if served:
            return f"http://{served.group(1)}/"
        if not line and hugo.poll() is not None:
            break
    raise AssertionError("hugo server did not start:\n" + "".join(seen))


@needs_hugo
def test_the_demo_lists_every_post_and_its_links_work_from_disk() -> None:
    recipe = re.search(r"^demo:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert recipe is not None
    command = recipe.group(1).replace("$(BIN)/", f"{VENV / 'bin'}/")
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    opened = re.search(r"open (\S+/index\.html)", done.stdout)
    assert opened is not None, done.stdout
    home = Path(opened.group(1))
    try:
        posts = int(re.search(r"== (\d+) posts archived", done.stdout).group(1))  # type: ignore[union-attr]
        html = home.read_text(encoding="utf-8")
        links = re.findall(r'<a href="([^"]+)"', html)
        images = re.findall(r'<img src="([^"]+)"', html)
        scripts = re.findall(r'<script src="([^"]+)"', html)
        assert len(links) == posts and len(images) == posts and len(scripts) == 2
        for target in links + images + scripts:  # as a browser opening the file resolves them
            assert not re.match(r"\w+:|/", target) and (home.parent / target).is_file(), target
        if shutil.which("node"):  # the home page's search, Chinese included
            assert demo_search(home.parent, "食堂") == ["社区食堂的一天：从早餐到晚饭"]
            assert demo_search(home.parent, "ATOMIC writes") == \
                ['Atomic writes, or why "index.md" is never half written']
            assert demo_search(home.parent, "食堂 atomic") == []
    finally:
        shutil.rmtree(home.parents[1])


def demo_search(site: Path, query: str) -> list[str]:
    """The titles the demo's home page lists for `query`, by its own script and index."""
    script = ("const vm = require('vm'), fs = require('fs'); const context = {window: {}};"
              "vm.createContext(context);"
              "vm.runInContext(fs.readFileSync(process.argv[1] + '/search-index.js', 'utf8'), context);"
              "const {searchPosts} = require(process.argv[1] + '/search.js');"
              "console.log(JSON.stringify(searchPosts(context.window.SEARCH_INDEX, process.argv[2])"
              ".map(p => p.title)));")
    done = subprocess.run(["node", "-e", script, str(site), query], capture_output=True, text=True,
                          timeout=60, check=True)
    return list(json.loads(done.stdout))
