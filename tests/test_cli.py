"""The matchar command line."""

from __future__ import annotations

import json
import subprocess
import sys

import matchar.cli


def test_demo_writes_a_self_contained_report(tmp_path):
    out = tmp_path / "demo"
    assert matchar.cli.main(["demo", "--out", str(out)]) == 0
    report = (out / "report.html").read_text()
    assert report.startswith("<!DOCTYPE html>") and report.rstrip().endswith("</html>")
    assert "data:image/png;base64," in report  # figures embedded: one file to mail
    summary = json.loads((out / "report.json").read_text())
    assert summary["jobs"]["gp"]["max_abs_difference"] < 1e-10
    assert summary["jobs"]["imaging"]["adjusted_rand_index"] > 0.9
    assert max(summary["jobs"]["spectral"]["spectral_angles_deg"]) < 5.0
    post = summary["jobs"]["nmr_posterior"]
    assert abs(sum(post["posterior"]) - 1.0) < 1e-9
    assert post["posterior"][post["true_candidate"]] == max(post["posterior"])
    assert summary["jobs"]["soap"]["shape"][0] == 54
    assert len(summary["jobs"]["nmr_shifts"]["shieldings_ppm"]) == 6  # ethanol's H atoms


def test_console_script_help_and_errors(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "matchar.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "demo" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "matchar.cli", "demo", "--threads", "0", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "n must be >= 1" in bad.stderr
    assert matchar.cli.main([]) == 2
