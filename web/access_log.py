"""gunicorn's access log as fields: a filter that turns each access record's atoms
into `remote`, `method`, `path`, `status`, `duration_s` and, for `/jobs`,
`job_id` (from the path or the `Location` of a new job), so a JSON access line
can be joined with the worker's lines for the same job."""

from __future__ import annotations

import logging
import re

JOB_PATH = re.compile(r"^/jobs/([0-9a-fA-F-]{36})")


class AccessFields(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args if isinstance(record.args, dict) else None
        if atoms:
            record.remote = atoms.get("h")
            record.method = atoms.get("m")
            record.path = atoms.get("U")
            record.status = atoms.get("s")
            try:
                record.duration_s = float(atoms.get("L", "nan"))
            except ValueError:
                pass
            for candidate in (atoms.get("U") or "", atoms.get("{location}o") or ""):
                found = JOB_PATH.match(candidate)
                if found:
                    record.job_id = found.group(1)
                    break
        return True
