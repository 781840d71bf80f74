"""The README's settings table stays true to the settings class."""

import re

from shared.settings import Settings
from tests.support.processes import ROOT

ROW = re.compile(r"^\| `([A-Z_]+)` \| `?([^`|]*)`? \|", re.MULTILINE)


def test_every_setting_is_documented_with_its_default():
    rows = dict(ROW.findall((ROOT / "README.md").read_text()))
    for name, field in Settings.model_fields.items():
        documented = rows.get(name.upper())
        assert documented is not None, f"{name.upper()} is missing from the README"
        default = getattr(field.default, "value", field.default)  # enums by value
        if isinstance(default, (int, float, bool, str)) and default != "":
            expected = str(default).lower() if isinstance(default, bool) else str(default)
            if isinstance(default, float) and default.is_integer():
                expected = str(int(default))
            assert documented.strip() == expected, f"{name.upper()}: README says {documented!r}"
    extra = set(rows) - {name.upper() for name in Settings.model_fields} - {"REDIS_PORT"}
    assert not extra, f"the README documents settings that do not exist: {extra}"
