"""The settings table (docs/settings.md) stays true to the settings class, and the
README stays the short front door, linking only to files that exist."""

import re

from bench.stack import ROOT
from shared.flower_main import FlowerSettings
from web.settings import WebSettings
from worker.settings import WorkerSettings

SETTINGS_DOC = ROOT / "docs" / "settings.md"
LINK = re.compile(r"\]\(([^)#\s]+)")
# Every tier's fields (the common ones are in each).
FIELDS = {**WebSettings.model_fields, **WorkerSettings.model_fields,
          **FlowerSettings.model_fields}
ROW = re.compile(r"^\| `([A-Z_]+)` \| `?([^`|]*)`? \|", re.MULTILINE)


def test_every_setting_is_documented_with_its_default():
    rows = dict(ROW.findall(SETTINGS_DOC.read_text()))
    for name, field in FIELDS.items():
        documented = rows.get(name.upper())
        assert documented is not None, f"{name.upper()} is missing from docs/settings.md"
        default = getattr(field.default, "value", field.default)  # enums by value
        if isinstance(default, (int, float, bool, str)) and default != "":
            expected = str(default).lower() if isinstance(default, bool) else str(default)
            if isinstance(default, float) and default.is_integer():
                expected = str(int(default))
            assert documented.strip() == expected, \
                f"{name.upper()}: docs/settings.md says {documented!r}"
    extra = set(rows) - {name.upper() for name in FIELDS} - {"REDIS_PORT"}
    assert not extra, f"docs/settings.md documents settings that do not exist: {extra}"


def test_the_readme_is_the_short_front_door_and_every_link_resolves():
    readme = ROOT / "README.md"
    assert len(readme.read_text()) < 12_000, "the README grew: move the depth to docs/"
    for page in [readme, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in LINK.findall(page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, missing"
