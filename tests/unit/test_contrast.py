"""Text on the accent colour meets WCAG AA (4.5:1) for every colour the config allows (any #RRGGBB).

The masthead's text is `--on-accent` on `--accent`; brand.css and app.js both derive `--on-accent` from the
accent. The ratio is computed with WCAG 2's relative-luminance formula, counting any opacity the stylesheet
gives the small text (blended over the accent, as a browser paints it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stacks.page_config import BLACK, WHITE, brand_stylesheet, contrast_ratio, relative_luminance, text_on

SITE = Path(__file__).resolve().parents[2] / "site"
AA = 4.5
# Every 15th value per channel (4,913 colours), every grey, and the colours that brought this up.
STEPS = range(0, 256, 15)
SAMPLE = sorted(
    {f"#{r:02x}{g:02x}{b:02x}" for r in STEPS for g in STEPS for b in STEPS}
    | {f"#{v:02x}{v:02x}{v:02x}" for v in range(256)}
    | {"#0a7d5a", "#ffd400", "#1f5fbf", "#ff9900", "#767676", "#777777"}
)
# The masthead's text: the listing's name, the small "Available on AWS Marketplace" and the description.
ON_ACCENT = (".masthead", ".eyebrow", ".masthead h1", ".masthead-name", ".lead")


def _rules() -> dict[str, str]:
    css = re.sub(r"/\*.*?\*/", "", (SITE / "styles.css").read_text(encoding="utf-8"), flags=re.S)
    rules: dict[str, str] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        for selector in selectors.split(","):
            rules[" ".join(selector.split())] = rules.get(" ".join(selector.split()), "") + body
    return rules


def _declaration(body: str, name: str) -> str | None:
    match = re.search(rf"(?:^|;)\s*{name}\s*:\s*([^;]+)", body)
    return match.group(1).strip() if match else None


def _opacity() -> float:
    """The opacity the small text is painted with: the product of its own and its masthead's."""
    rules = _rules()
    opacity = 1.0
    for selector in (".masthead", ".eyebrow"):
        value = _declaration(rules.get(selector, ""), "opacity")
        if value is not None:
            opacity *= float(value[:-1]) / 100 if value.endswith("%") else float(value)
    return opacity


def _blend(front: str, back: str, alpha: float) -> str:
    channels = [
        round(alpha * int(front[i : i + 2], 16) + (1 - alpha) * int(back[i : i + 2], 16)) for i in (1, 3, 5)
    ]
    return "#" + "".join(f"{c:02x}" for c in channels)


def test_the_formula_gives_the_known_ratios() -> None:
    assert relative_luminance(WHITE) == pytest.approx(1.0)
    assert relative_luminance(BLACK) == 0
    assert contrast_ratio(WHITE, BLACK) == pytest.approx(21.0)
    assert contrast_ratio("#767676", WHITE) == pytest.approx(4.54, abs=0.01)  # the classic AA grey
    # What axe measured on the old masthead (4.48:1): white at 0.9 opacity on #0a7d5a, below AA.
    assert 4.46 < contrast_ratio(_blend(WHITE, "#0a7d5a", 0.9), "#0a7d5a") < AA


def test_the_masthead_text_is_not_tinted_or_faded() -> None:
    """The check below assumes the text is --on-accent over --accent: no rule paints it otherwise."""
    rules = _rules()
    assert _declaration(rules[".masthead"], "background") == "var(--accent)"
    assert _declaration(rules[".masthead"], "color") == "var(--on-accent)"
    for selector in ON_ACCENT:
        body = rules.get(selector, "")
        assert _declaration(body, "color") in (None, "var(--on-accent)"), selector
        assert _declaration(body, "background") is None or selector == ".masthead", selector
        if selector not in (".masthead", ".eyebrow"):
            assert _declaration(body, "opacity") is None, selector


@pytest.mark.parametrize("accent", ["#0a7d5a", "#ffd400", "#1f5fbf"])
def test_the_small_header_text_meets_aa_on_the_colours_sellers_chose(accent: str) -> None:
    text = _blend(text_on(accent), accent, _opacity())
    assert contrast_ratio(text, accent) >= AA, (accent, text, contrast_ratio(text, accent))


def test_the_small_header_text_meets_aa_on_every_sampled_accent_colour() -> None:
    opacity = _opacity()
    worst = min(SAMPLE, key=lambda accent: contrast_ratio(_blend(text_on(accent), accent, opacity), accent))
    ratio = contrast_ratio(_blend(text_on(worst), worst, opacity), worst)
    assert ratio >= AA, f"{worst}: {ratio:.2f}:1"


def test_brand_css_sets_the_accent_and_the_text_colour_on_it() -> None:
    assert brand_stylesheet("#0A7D5A") == ":root { --accent: #0a7d5a; --on-accent: #ffffff; }\n"
    assert brand_stylesheet("#ffd400") == ":root { --accent: #ffd400; --on-accent: #000000; }\n"
    for bad in ("red", "#fff", "#0a7d5a;} body{display:none", ""):
        with pytest.raises(ValueError, match="is not #RRGGBB"):
            brand_stylesheet(bad)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the page's script")
def test_the_landing_pages_script_picks_the_same_text_colour() -> None:
    """app.js sets --on-accent again from config.json: it must agree with brand.css for every colour."""
    script = (SITE / "app.js").read_text(encoding="utf-8")
    function = re.search(r"function contrastText\(hex\) \{.*?\n\}", script, re.S)
    assert function, "contrastText is gone from app.js"
    program = f"{function.group(0)}\nconsole.log(JSON.stringify({json.dumps(SAMPLE)}.map(contrastText)));"
    node = shutil.which("node") or "node"
    result = subprocess.run(  # noqa: S603 - Node.js running the page's own function
        [node, "-e", program], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(result.stdout) == [text_on(accent) for accent in SAMPLE]
