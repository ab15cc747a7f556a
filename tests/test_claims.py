"""Per-case claims: one run holds a case at a time; claims of runs that are gone are taken over."""

import json
import os
import subprocess
import sys
import time

from ct2mri_cli.inference.claims import CLAIMS_FOLDER, STALE_SECONDS, CaseClaims


def _foreign_claim(folder, case, run, pid, host):
    claims = folder / CLAIMS_FOLDER
    claims.mkdir(parents=True, exist_ok=True)
    record = json.dumps({"run": run, "pid": pid, "host": host, "started": 0})
    (claims / f"{case}.claim").write_text(record)
    (claims / f"run-{run}.alive").write_text(record)
    return claims / f"run-{run}.alive"


def test_one_run_holds_a_case_and_leaves_nothing(tmp_path):
    with CaseClaims(tmp_path) as first, CaseClaims(tmp_path) as second:
        assert first.take("p0") is None and first.take("p0") is None  # taking twice is harmless
        holder = second.take("p0")
        assert holder == f"process {os.getpid()} on {first.host}"
        assert second.take("p1") is None and first.take("p1") is not None
        assert json.loads(first.path("p0").read_text())["run"] == first.run
    assert not (tmp_path / CLAIMS_FOLDER).exists()  # both ended: claims and run files removed


def test_a_claim_of_a_dead_process_is_taken_over(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    with CaseClaims(tmp_path) as claims:
        _foreign_claim(tmp_path, "p0", "deadrun", dead_pid, claims.host)
        assert claims.take("p0") is None
        assert json.loads(claims.path("p0").read_text())["run"] == claims.run
    assert not (tmp_path / CLAIMS_FOLDER).exists()  # the dead run's file went too


def test_a_claim_of_a_live_process_is_honoured(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with CaseClaims(tmp_path) as claims:
            run_file = _foreign_claim(tmp_path, "p0", "liverun", sleeper.pid, claims.host)
            assert claims.take("p0") == f"process {sleeper.pid} on {claims.host}"
            run_file.unlink()  # a run without its run file has ended (or was never one)
            assert claims.take("p0") is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_claim_from_another_host_lives_by_its_heartbeat(tmp_path):
    with CaseClaims(tmp_path) as claims:
        run_file = _foreign_claim(tmp_path, "p0", "remote", 1, "another-host")
        assert claims.take("p0") == "process 1 on another-host"
        old = time.time() - STALE_SECONDS - 5
        os.utime(run_file, (old, old))
        assert claims.take("p0") is None
