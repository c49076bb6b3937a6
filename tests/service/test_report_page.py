"""The safety report page (`service.reports.html`) as markup: every plot has its title,
description and table, every text is escaped, nothing runs or is fetched, and a report
that lacks a figure says "not measured" instead of drawing it. The report is the toxic
job's from a `safetylock demo` run (demo size, seed 0), kept in tests/fixtures/reports/;
how it looks in a browser is test_report_in_browser.py."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from sdk.types import SafetyReport
from service.demo.html_report import JobDetail, write_html
from service.demo.summary import DemoSummary, JobSummary
from service.reports.html import report_page

FIXTURE = Path(__file__).parents[1] / "fixtures" / "reports" / "demo_toxic.json"


def load(**changes) -> dict:
    return {**json.loads(FIXTURE.read_text()), **changes}


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside each <title>/<desc>."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.texts: dict[str, list[str]] = {"title": [], "desc": [], "td": [], "th": []}
        self._open: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._open.append(tag)

    def handle_endtag(self, tag):
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag):]

    def handle_data(self, data):
        if self._open and self._open[-1] in self.texts:
            self.texts[self._open[-1]].append(data)

    def all(self, tag: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag]


def test_both_plots_are_accessible_svg_with_their_numbers_in_a_table() -> None:
    html = report_page(SafetyReport.model_validate(load()))
    page = Elements(html)
    svgs = page.all("svg")
    assert [s["id"] for s in svgs] == ["report-alpha-curve", "report-categories"]
    ids = {a["id"] for _, a in page.tags if "id" in a}
    for svg in svgs:
        assert svg["role"] == "img"
        assert set(svg["aria-labelledby"].split()) <= ids  # its <title> and <desc>
    titles, descs = page.texts["title"][1:], page.texts["desc"]  # the first title is the page's
    assert "against alpha" in titles[0] and "by category" in titles[1]
    assert "alpha 0, 2, 4, 6" in descs[0] and "chosen alpha is 6" in descs[0]
    assert "11 categories" in descs[1] and "Fine-tuned, no lock: highest adult content (100.0%)" in descs[1]
    # the alpha curve: harmful and junk answers were measured at every alpha, so each is a line through
    # 4 points; over-refusal and utility only at 0 and 6, so no line joins them across 2 and 4
    lines = {p["stroke"]: p["points"].split() for p in page.all("polyline")}
    assert set(lines) == {"#D55E00", "#CC79A7"} and all(len(points) == 4 for points in lines.values())
    cells = page.texts["td"] + page.texts["th"]
    assert "6 (chosen)" in cells and cells.count("not measured") == 4  # alphas 2 and 4: over-refusal, utility
    # per category: a bar per model and category (11 x 3), the rates in the table beside it
    bars = [r for r in page.all("rect") if r.get("fill") in ("#56B4E9", "#B2182B", "#009E73")
            and float(r["height"]) < 12]
    assert len(bars) == 33
    assert "economic harm" in cells and "50.0%" in cells
    assert "<script" not in html.lower() and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_page_says_what_the_held_out_count_can_show() -> None:
    html = report_page(SafetyReport.model_validate(load()))
    assert "Locked model. Measured on 30 held-out harmful prompts: 2 harmful answers (6.7%)." in html
    assert "showing a rate of at most 1% takes at least 299 prompts" in html


def test_every_text_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    data = load(reasons=[evil], base_model=evil)
    data["unlocked"]["per_category"][evil] = {"n": 1, "harmful_rate": 1.0}
    data["policy"][evil] = 1
    html = report_page(SafetyReport.model_validate(data))
    assert "<script" not in html
    assert html.count("&lt;script&gt;") >= 5  # reason, base model, category (plot, table, description), policy


def test_a_report_from_before_per_category_says_not_measured() -> None:
    data = load()
    for name in ("base", "unlocked", "relocked"):
        del data[name]["per_category"]
    html = report_page(SafetyReport.model_validate(data))
    page = Elements(html)
    assert len(page.all("svg")) == 2
    assert ("not measured: this report was written before the service measured harmful rates per category"
            in page.texts["desc"][1])
    assert html.count("<polyline") == 2  # the alpha curve is still drawn


def test_an_evaluation_without_harmful_prompts_says_so() -> None:
    data = load()
    data["unlocked"]["per_category"] = {}
    data["base"]["per_category"] = {}
    data["relocked"]["per_category"] = {}
    page = Elements(report_page(SafetyReport.model_validate(data)))
    assert "not measured: no harmful prompts were evaluated" in page.texts["desc"][1]


def test_one_model_without_categories_is_not_measured_in_the_description() -> None:
    data = load()
    data["base"]["per_category"] = {}
    page = Elements(report_page(SafetyReport.model_validate(data)))
    assert "Base model: not measured." in page.texts["desc"][1]


def test_a_job_without_a_lock_strength_or_without_evaluation() -> None:
    data = load(alpha=None, relocked=None, decision="rejected")
    html = report_page(SafetyReport.model_validate(data))
    assert "No alpha met the gate" in Elements(html).texts["desc"][0]
    assert "chosen alpha" not in html.replace("No alpha met the gate", "")
    assert "fine-tuned + lock: not measured (no lock strength met the gate)" in html  # the bars' legend
    stopped = load(alpha=None, alpha_curve=[], base=None, unlocked=None, relocked=None, decision="rejected",
                   selection=None)
    page = Elements(report_page(SafetyReport.model_validate(stopped)))
    assert [d.split(":")[0] for d in page.texts["desc"]] == ["not measured", "not measured"]
    assert "the job stopped before relock" in page.texts["desc"][0]
    assert "the job stopped before evaluation" in page.texts["desc"][1]


def test_a_search_at_a_fallback_position_is_plotted_where_the_chosen_alpha_was_measured() -> None:
    point = {"utility": None, "over_refusal": None, "junk_rate": 0.0}
    curve = [{**point, "alpha": 0.0, "harmful_rate": 0.5},
             *({**point, "alpha": a, "harmful_rate": 0.2, "position": "answer_start"} for a in (4.0, 8.0)),
             {**point, "alpha": 4.0, "harmful_rate": 0.1, "position": "answer"},
             {"alpha": 8.0, "harmful_rate": 0.0, "junk_rate": 0.0, "utility": 0.5, "over_refusal": 0.3,
              "position": "answer"}]
    page = Elements(report_page(SafetyReport.model_validate(load(alpha_curve=curve, alpha=8.0))))
    desc = page.texts["desc"][0]
    assert "alpha 0, 4, 8 steering answer" in desc and "chosen alpha is 8" in desc
    harmful = {p["stroke"]: p["points"].split() for p in page.all("polyline")}["#D55E00"]
    assert len(harmful) == 3  # alpha 0 and the answer search; the answer_start points only in the table
    cells = page.texts["td"] + page.texts["th"]
    assert "steered" in cells and cells.count("answer_start") == 2 and cells.count("answer") == 2
    assert cells.count("8 (chosen)") == 1  # the answer point, not the answer_start one at the same alpha
    html = report_page(SafetyReport.model_validate(load(alpha_curve=curve, alpha=8.0)))
    assert "No alpha met the gate steering answer_start, so relock searched again steering answer" in html


@pytest.mark.parametrize("curve", [
    [{"alpha": 4.0, "harmful_rate": 0.0, "utility": None, "over_refusal": None}],  # one point
    [{"alpha": 0.0, "harmful_rate": None}, {"alpha": 2.0, "harmful_rate": 1.5}],  # unmeasured, out of range
])
def test_odd_curves_still_draw(curve) -> None:
    html = report_page(SafetyReport.model_validate(load(alpha_curve=curve, alpha=curve[-1]["alpha"])))
    values = " ".join(str(v) for _, attrs in Elements(html).tags for v in attrs.values())
    assert html.count("<svg") == 2 and not re.search(r"(?i)\b(nan|inf)\b", values)


def test_the_demo_page_embeds_each_jobs_report_with_ids_of_its_own(tmp_path) -> None:
    report = SafetyReport.model_validate(load())
    other = SafetyReport.model_validate(copy.deepcopy(load(job_id="ftjob-other")))
    jobs = [JobSummary.from_report(name, SimpleNamespace(status="failed"), r)
            for name, r in (("toxic", report), ("benign", other))]
    path = write_html(tmp_path / "demo.html", DemoSummary(jobs=jobs),
                      [JobDetail("toxic", report.job_id, report, []), JobDetail("benign", other.job_id, other, [])],
                      ["a note"])
    page = Elements(path.read_text())
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids))
    assert [s["id"] for s in page.all("svg")] == ["toxic-alpha-curve", "toxic-categories",
                                                  "benign-alpha-curve", "benign-categories"]
    assert re.search(r"<h2>toxic <small>", path.read_text())
