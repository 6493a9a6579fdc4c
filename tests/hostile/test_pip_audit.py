"""pip-audit of the locked dependencies; each accepted finding is explained in docs/security.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def explained() -> set[str]:
    """Vulnerability ids that docs/security.md lists under its accepted findings."""
    text = (ROOT / "docs" / "security.md").read_text()
    return set(re.findall(r"\b(?:PYSEC|GHSA|CVE)-[\w-]+", text))


@pytest.mark.slow
def test_locked_dependencies_have_no_unexplained_vulnerability(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    exported = subprocess.run(["uv", "export", "--frozen", "--no-hashes", "--no-emit-project", "-o", str(req)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert exported.returncode == 0, exported.stderr
    audit = subprocess.run([sys.executable, "-m", "pip_audit", "-r", str(req), "--no-deps", "--disable-pip",
                            "--format", "json", "--progress-spinner", "off", "--timeout", "20"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    if audit.returncode != 0 and not audit.stdout.strip().startswith("{"):
        pytest.skip(f"pip-audit could not reach PyPI's vulnerability API: {audit.stderr.strip()[-300:]}")
    report = json.loads(audit.stdout)
    audited = [d for d in report["dependencies"] if "vulns" in d]
    if not audited:  # offline, pip-audit reports every package as "not found on PyPI" instead of failing
        reason = report["dependencies"][0].get("skip_reason", "") if report["dependencies"] else "no dependencies"
        pytest.skip(f"PyPI's vulnerability API is unreachable, nothing was audited ({reason})")
    found = {(d["name"], v["id"], tuple(v.get("aliases", []))) for d in audited for v in d["vulns"]}
    ok = explained()
    unexplained = [f for f in found if f[1] not in ok and not ok.intersection(f[2])]
    assert not unexplained, f"explain or fix in docs/security.md: {sorted(unexplained)}"
