"""The job data has one home: no module but `shared.job_data.keys` spells a Redis key
of resq's, and no Lua script types a status word (they are generated from the enum)."""

import re
from typing import get_args

from bench.stack import ROOT
from shared.api_models import JobStatus, WebhookEvent
from shared.job_data import budget, lua, outbox, reconcile, records, store

SOURCES = [path for folder in ("shared", "web", "worker", "bench")
           for path in (ROOT / folder).rglob("*.py")]


def test_only_the_keys_module_spells_a_key():
    spelled = [f"{path.relative_to(ROOT)}:{number}" for path in SOURCES
               if path.name != "keys.py"
               for number, line in enumerate(path.read_text().splitlines(), 1)
               if re.search(r"""["']resq:[a-z]""", line)]
    assert spelled == []


def test_no_script_types_a_status_word():
    scripts = {name: value for module in (store, budget, reconcile, records, outbox)
               for name, value in vars(module).items()
               if name.isupper() and isinstance(value, str) and "redis.call" in value}
    assert {"CREATE", "START", "FINISH", "DISCARD", "TRIM", "RECONCILE"} <= set(scripts)
    for name, script in scripts.items():
        body = script.replace(lua.PRELUDE, "")
        for word in (*(status.value for status in JobStatus), *get_args(WebhookEvent)):
            assert f"'{word}'" not in body, (name, word)
    for status in JobStatus:
        assert f"local {status.name} = '{status.value}'" in lua.PRELUDE
