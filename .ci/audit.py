"""CI's dependency audit: known vulnerabilities in the packages installed in .venv.

    .venv/bin/python .ci/audit.py

Runs pip-audit (a test dependency) over the environment Cairn was installed into, asking
PyPI's vulnerability data. Exits 1 when a package has a known vulnerability (listed with its
fix versions), 0 when none was found. A machine that cannot reach the vulnerability database
(no network, or a package mirror without per-version data, where every look-up comes back
"not found") must not fail CI: the audit then says "skipped: ..." and exits 0. A run where
only some packages could be looked up reports how many were audited.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMEOUT = 300
#: What requests and urllib3 say when a host cannot be reached.
NETWORK_ERRORS = ("ConnectionError", "NameResolutionError", "Max retries exceeded",
                  "Failed to resolve", "timed out", "Network is unreachable")
SKIPPED = "skipped: no network access to the vulnerability database"


def main() -> int:
    audit = Path(sys.executable).with_name("pip-audit")
    if not audit.exists():
        print("pip-audit is not installed in this environment (it is a test dependency)")
        return 1
    try:
        run = subprocess.run([str(audit), "--format", "json", "--progress-spinner", "off",
                              "--skip-editable"], capture_output=True, text=True,
                             timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"pip-audit: {SKIPPED} (no answer within {TIMEOUT} s)")
        return 0
    if run.returncode not in (0, 1) or not run.stdout.strip():
        if any(marker in run.stderr for marker in NETWORK_ERRORS):
            print(f"pip-audit: {SKIPPED} ({run.stderr.strip().splitlines()[-1][:200]})")
            return 0
        print(f"pip-audit failed (exit {run.returncode}):\n{run.stderr}")
        return 1
    return judge(json.loads(run.stdout))


def judge(report: dict[str, Any]) -> int:
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    audited = [d for d in deps if "skip_reason" not in d]
    for d in vulnerable:
        for v in d["vulns"]:
            fixes = ", ".join(v.get("fix_versions") or []) or "none yet"
            print(f"VULNERABLE {d['name']} {d['version']}: {v['id']} "
                  f"(fixed in: {fixes}) {(v.get('description') or '')[:160]}")
    if vulnerable:
        print(f"pip-audit: {len(vulnerable)} of {len(audited)} audited packages have known "
              "vulnerabilities: upgrade them (or pin a fixed version in pyproject.toml)")
        return 1
    if not audited:
        print(f"pip-audit: {SKIPPED} (none of {len(deps)} packages could be looked up)")
        return 0
    skipped = len(deps) - len(audited)
    print(f"pip-audit: {len(audited)} packages audited, no known vulnerabilities"
          + (f"; {skipped} could not be looked up" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
