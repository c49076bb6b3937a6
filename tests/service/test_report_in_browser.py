"""The safety report page as a person sees it: headless Chromium loads the page the API
serves (its body and headers, Content-Security-Policy included, from a local HTTP
server) and renders it. The laid-out DOM holds both plots with their titles and tables,
and the screenshot shows them: the harmful-rate line falling across the alpha curve, a
bar per category, and each table beside its plot (the page's own style applied under its
policy). The report is the toxic job's from a `safetylock demo` run (tests/fixtures/reports/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.reports import html as report_html
from service.store_layout import job_key
from tests.fixtures.browser import serve
from tests.service.helpers import add_job_and_key

FIXTURE = Path(__file__).parents[1] / "fixtures" / "reports" / "demo_toxic.json"


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])


def _where(image: np.ndarray, hex_colour: str, tolerance: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the pixels within `tolerance` of a colour (anti-aliased edges aside)."""
    return np.nonzero(np.abs(image.astype(int) - _rgb(hex_colour)).max(axis=2) <= tolerance)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The API's answer for the page (status, headers, body), served as-is over HTTP."""
    from fastapi.testclient import TestClient

    from service.api.main import create_app
    from service.settings import Settings

    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("service"), store_url=None, broker_url=None,
                              redis_url=None), resume=False)
    with TestClient(app) as client:
        ctx = app.state.context
        job, key = add_job_and_key(ctx, "demo-chat")
        report = {**json.loads(FIXTURE.read_text()), "job_id": job.id}
        ctx.store.put_bytes(job_key(job, "report.json"), json.dumps(report).encode())
        response = client.get(f"/v1/fine_tuning/jobs/{job.id}/report.html", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    headers = {k: response.headers[k] for k in ("content-type", "content-security-policy", "x-content-type-options")}
    with serve(lambda path: (200, headers, response.content)) as url:
        yield f"{url}/report.html", job.id


def test_the_rendered_dom_holds_both_plots_and_their_tables(chromium, served) -> None:
    url, job_id = served
    dom = chromium.dump_dom(url)
    assert job_id in dom
    for plot_id in ("report-alpha-curve", "report-categories"):
        start = dom.index(f'id="{plot_id}"')
        svg = dom[dom.rindex("<svg", 0, start):dom.index("</svg>", start)]
        assert f'<title id="{plot_id}-title">' in svg and f'<desc id="{plot_id}-desc">' in svg
        figure_end = dom.index("</figure>", start)
        assert "<table>" in dom[start:figure_end]  # the numbers, beside the plot
    assert dom.count("<polyline") == 2 and dom.count("<svg") == 2
    assert "<script" not in dom


def test_the_screenshot_shows_the_plots(chromium, served, tmp_path) -> None:
    url, _ = served
    shot = chromium.screenshot(url, tmp_path / "report.png", width=1600, height=2400)
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape == (2400, 1600, 3)
    assert (image.min(axis=2) < 200).mean() > 0.02, "the page rendered (almost) blank"

    # the alpha curve: the harmful rate falls from 40% at alpha 0 to 3.3% at alpha 6 across the plot,
    # far more pixels than its legend swatch alone
    rows, cols = _where(image, report_html.HARMFUL)
    assert rows.size > 600, rows.size
    assert cols.max() - cols.min() > 400 and rows.max() - rows.min() > 70

    # harmful rates per category: 11 groups of bars, the fine-tuned model's long (up to 100%), the
    # relocked model's one bar at 50%; the base model's all at 0% (hairlines)
    rows, cols = _where(image, report_html.UNLOCKED)
    assert rows.size > 10_000, rows.size
    assert rows.max() - rows.min() > 10 * 40 and cols.max() - cols.min() > 250
    bar_rows = (rows.min(), rows.max())
    green_rows, _ = _where(image, report_html.RELOCKED)
    assert green_rows.size > 1000, green_rows.size
    assert _where(image, report_html.BASE)[0].size > 50

    # each table sits beside its plot: table borders (#ccc) right of the 560-pixel plot, level with
    # the bars; without the page's style (blocked, or broken) the table would be below the plot
    region = image[bar_rows[0]:bar_rows[1], 640:]
    border_rows, _ = _where(region, "#cccccc", tolerance=6)
    assert border_rows.size > 500, border_rows.size
