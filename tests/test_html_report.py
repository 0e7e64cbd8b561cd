"""The HTML report: every section and image present, rendered in headless Chromium.

The browser test skips when no Chromium is installed, except under CI=true
where a missing browser is a failure (.ci/run installs it).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from harness.cli.main import main
from harness.reports.html_report import RUN_SECTIONS, SUITE_SECTIONS, render_html

from conftest import png_size
from tiny_run import PluginRun, plugin_run

# images each suite section must hold for the tiny two-model run
EXPECTED_IMAGES = {
    "gradcam-per-element": 1,
    "score-distribution": 1,
    "shap-top": 2,
    "angular-histogram": 1,
    "overlap-matrix": 1,
    "structure": 2,
}


class _Dom(HTMLParser):
    """Section ids and, per section, the images it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: dict[str, list[dict[str, str]]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.sections.append(a.get("id", ""))
            self.images[a.get("id", "")] = []
        elif tag == "img" and self.sections:
            self.images[self.sections[-1]].append(a)


def _parse(html: str) -> _Dom:
    dom = _Dom()
    dom.feed(html)
    return dom


def _png_size(src: str) -> tuple[int, int]:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    return png_size(base64.b64decode(src[len(prefix):], validate=True))


def _expected_ids() -> list[str]:
    return list(RUN_SECTIONS) + [f"{s}-0" for s in SUITE_SECTIONS]


def _assert_complete(dom: _Dom) -> None:
    for ident in _expected_ids():
        assert ident in dom.sections, f"section {ident} missing; have {dom.sections}"
    for name, count in EXPECTED_IMAGES.items():
        images = dom.images[f"{name}-0"]
        assert len(images) == count, (name, images and [i.get("data-plot") for i in images])
        for img in images:
            width, height = _png_size(img["src"])
            assert width > 100 and height > 100


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> PluginRun:
    done = plugin_run(tmp_path_factory.getbasetemp())
    assert done.returncode == 0, done.output
    return done


@pytest.fixture()
def doc(run: PluginRun) -> dict[str, Any]:
    return json.loads(run.results.read_text())


def test_plugin_html_has_every_section_and_image(run: PluginRun) -> None:
    html = run.html.read_text()
    _assert_complete(_parse(html))
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # self-contained
    assert "PASSED: 4 of 4 checks passed" in html and "epoch 7" in html


def test_cli_report_renders_the_same_document(run: PluginRun, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(run.results), "-o", str(out)]) == 0
    _assert_complete(_parse(out.read_text()))


def test_cli_report_refuses_an_invalid_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "mlff-harness-results/1"}))
    assert main(["report", str(bad), "-o", str(tmp_path / "r.html")]) == 2
    assert "bad.json: not a valid mlff-harness-results/1 document" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_failed_measurements_and_reasons_show_as_fail(doc: dict[str, Any]) -> None:
    failing = copy.deepcopy(doc)
    outcome = failing["outcomes"][0]
    outcome["measurements"][0]["passed"] = False
    outcome["passed"] = False
    outcome["reason"] = "planted <reason> & more"
    failing["passed"] = False
    html = render_html(failing)
    assert "FAILED: 3 of 4 checks passed" in html
    assert html.count('<span class="fail">FAIL</span>') == 2  # the measurement and the reason row
    assert "planted &lt;reason&gt; &amp; more" in html  # escaped


def test_missing_surrogate_is_explained_not_drawn(doc: dict[str, Any]) -> None:
    no_shap = copy.deepcopy(doc)
    for model in no_shap["suites"][0]["models"].values():
        model["shap"] = {"error": "the surrogate needs at least 6 structures"}
    html = render_html(no_shap)
    dom = _parse(html)
    for name in ("shap-top", "angular-histogram", "overlap-matrix"):
        assert dom.images[f"{name}-0"] == []
    assert "the surrogate needs at least 6 structures" in html
    assert len(dom.images["structure-0"]) == 2  # the rest is still drawn


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


PROBE = """<script>
window.addEventListener('load', function () {
  for (const img of document.images) { img.setAttribute('data-natural', img.naturalWidth + 'x' + img.naturalHeight); }
  document.body.setAttribute('data-probed', String(document.images.length));
});
</script></body>"""


def test_report_renders_in_headless_chromium(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no Chromium found: install the Debian package 'chromium' (.ci/run does)")
        pytest.skip("no Chromium on PATH (apt-get install chromium): the browser rendering test needs one")
    run: PluginRun = request.getfixturevalue("run")  # the plugin run only once a browser is known to exist
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=10000"]
    # the report as written, with a probe that records what the browser decoded of each image
    probed = tmp_path / "probed.html"
    probed.write_text(run.html.read_text().replace("</body>", PROBE, 1))
    dom_text = subprocess.run(
        [*flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    dom = _parse(dom_text)
    _assert_complete(dom)
    assert 'data-probed="8"' in dom_text
    for section in EXPECTED_IMAGES:
        for img in dom.images[f"{section}-0"]:
            width, height = (int(v) for v in img["data-natural"].split("x"))
            assert width > 100 and height > 100, (section, img["data-natural"])
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1280,6000", run.html.as_uri()],
        capture_output=True, timeout=120, check=True,
    )
    print(f"screenshot of the report: {shot}")
    width, height = _png_size("data:image/png;base64," + base64.b64encode(shot.read_bytes()).decode())
    assert (width, height) == (1280, 6000)
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50  # plots were painted, not a blank page
