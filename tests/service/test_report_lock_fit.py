"""The report discloses how the base's lock read the fine-tuned model: relock's transfer
check and task veto go into the Report object and onto its page; a report without them
(a head_bias lock, a job stopped before relock, an older report) shows no such section."""

from __future__ import annotations

import json
from html import unescape
from pathlib import Path

from sdk.types import SafetyReport
from service.context import ServiceContext
from service.pipeline.context import StageContext
from service.pipeline.report import build_report
from service.reports.html import report_page
from service.settings import Settings
from service.state.records import TaskVeto, TransferCheck
from tests.service.helpers import add_job, placeholder_output

FIXTURE = Path(__file__).parents[1] / "fixtures" / "reports" / "demo_toxic.json"
TRANSFER = TransferCheck(num_calibration=48, condition_auc=0.9871, condition_true_positive_rate=0.875,
                         condition_false_positive_rate=0.0625, condition_cosine=0.9113, head_cosines=[0.5, 0.7],
                         head_cosine_mean=0.6, notes=["a <b>note</b>"])
VETO = TaskVeto(num_tasks=20, num_harmful=16, tasks_fired=10, tasks_fired_after=0, layer=23, threshold=0.0421,
                gap=0.105)


def _context(tmp_path) -> StageContext:
    ctx = ServiceContext(Settings(data_dir=tmp_path, broker_url=None, redis_url=None, store_url=None))
    return StageContext(ctx, add_job(ctx).id)


def test_the_report_carries_relocks_transfer_check_and_veto(tmp_path) -> None:
    sc = _context(tmp_path)
    sc.save_output(placeholder_output("relock").model_copy(update={"transfer": TRANSFER, "veto": VETO}))

    report = SafetyReport.model_validate(json.loads(json.dumps(build_report(sc, "rejected", []))))

    assert report.transfer.condition_auc == 0.9871 and report.transfer.condition_cosine == 0.9113
    assert report.transfer.head_cosine_mean == 0.6 and report.transfer.notes == ["a <b>note</b>"]
    assert "head_cosines" not in report.transfer.model_dump()  # the per-head list stays in relock's output
    assert report.veto.model_dump() == VETO.model_dump()


def test_a_job_without_relocks_figures_reports_none(tmp_path) -> None:
    sc = _context(tmp_path)
    report = SafetyReport.model_validate(build_report(sc, "rejected", ["stopped"]))
    assert report.transfer is None and report.veto is None
    sc.save_output(placeholder_output("relock"))  # a head_bias lock: neither is measured
    report = SafetyReport.model_validate(build_report(sc, "rejected", []))
    assert report.transfer is None and report.veto is None


def _page(**changes) -> str:
    data = {**json.loads(FIXTURE.read_text()), **changes}
    return report_page(SafetyReport.model_validate(data))


def test_the_page_shows_the_transfer_figures_and_the_veto() -> None:
    html = _page(transfer=TRANSFER.model_dump(), veto=VETO.model_dump())
    assert "a &lt;b&gt;note&lt;/b&gt;" in html and "<b>note" not in html
    text = unescape(html)
    assert "Does the base's lock read this model?" in text
    for shown in ("0.987", "87.5%", "6.2%", "0.911", "0.600", "48 labelled calibration prompts"):
        assert shown in text
    assert ("Task veto at layer 23 (threshold 0.0421, gap +0.1050): the fitted condition fires on 10 of 20 "
            "task prompts (selection half), 0 with the veto; all 16 harmful calibration prompts stay fired.") in text


def test_the_page_says_when_no_veto_was_added_and_what_was_not_measured() -> None:
    none_added = VETO.model_copy(update={"layer": None, "threshold": None, "gap": None, "tasks_fired": 0,
                                         "tasks_fired_after": 0, "reason": "the condition fires on no task prompt"})
    html = _page(transfer=TransferCheck(num_calibration=48).model_dump(), veto=none_added.model_dump())
    assert "Task veto: none added (the condition fires on no task prompt); the fitted condition fires on 0 of 20 task prompts" in unescape(html)
    assert html.count("not measured") >= 5


def test_an_older_report_has_no_such_section() -> None:
    assert "Does the base" not in _page()


def test_the_terminal_report_shows_them_too() -> None:
    from rich.console import Console

    from sdk.cli.render import report_view

    report = SafetyReport.model_validate({"job_id": "ftjob-x", "base_model": "m", "decision": "rejected",
                                          "transfer": TRANSFER.model_dump(), "veto": VETO.model_dump()})
    console = Console(record=True, width=200)
    console.print(report_view(report))
    text = console.export_text()
    assert "lock transfer: condition AUC 0.987, fires on 87.5% of harmful / 6.2% of benign" in text
    assert "task veto at layer 23: the condition fires on 10 of 20 task prompts, 0 with the veto" in text
