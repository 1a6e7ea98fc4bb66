"""The embedded local AWS: cold `local up`, a trivial `sesflow run`, one send end to end,
state transitions on the happy path (target <= 8), peak memory of the stack.

    python -m bench.local_stack [--sends 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sesflow import executions
from sesflow.local import control
from sesflow.local.lambda_workers import peak_rss_mb
from sesflow.target import local_target

ROOT = Path(__file__).resolve().parent.parent
TRIVIAL = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}


def workers_memory(endpoint: str) -> tuple[int, float]:
    """The Lambda worker processes of a running stack: how many run, and their memory (MB, the
    sum of each one's peak resident set, from ``/_sesflow/stats``)."""
    with urllib.request.urlopen(f"{endpoint}/_sesflow/stats", timeout=30) as resp:
        workers = json.loads(resp.read())["lambdaWorkers"]
    return int(workers["running"]), float(workers["rssMb"])


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=20)
    args = parser.parse_args(argv)
    sdir = Path(tempfile.mkdtemp(prefix="sesflow-bench-"))
    t0 = time.perf_counter()
    state, _ = control.up(ROOT, port=0, sdir=sdir)
    up_s = time.perf_counter() - t0
    figures: dict[str, float] = {"local_up_s": up_s}
    try:
        target = local_target(ROOT, sdir)
        sfn = target.clients.client("stepfunctions")
        trivial = sfn.create_state_machine(
            name="bench-trivial", definition=json.dumps(TRIVIAL), roleArn="arn:aws:iam::123456789012:role/bench"
        )["stateMachineArn"]
        env = {"SESFLOW_STATE_DIR": str(sdir), "PATH": str(Path(sys.executable).parent)}
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sesflow.cli", "run", trivial, "--input", "{}"],
            check=True,
            capture_output=True,
            env=env,
            cwd=ROOT,
        )
        figures["trivial_run_cli_s"] = time.perf_counter() - t0

        request = json.loads((ROOT / "events" / "send-welcome.json").read_text())
        latencies, transitions = [], []
        for i in range(args.sends + 1):
            t0 = time.perf_counter()
            arn = executions.start(sfn, target.outputs["SendStateMachineArn"], request | {"emailId": f"bench-{i}"})
            executions.wait(sfn, arn)
            elapsed = time.perf_counter() - t0
            rep = executions.report(sfn, arn)
            assert rep.output["status"] == "sent", rep.output
            if i:  # the first send pays the handlers' cold imports
                latencies.append(elapsed)
            else:
                figures["first_send_s"] = elapsed
            transitions.append(rep.transitions)
        figures["send_latency_median_s"] = statistics.median(latencies)
        figures["send_latency_p90_s"] = sorted(latencies)[int(0.9 * (len(latencies) - 1))]
        figures["happy_path_transitions"] = max(transitions)
        figures["peak_rss_mb"] = peak_rss_mb(int(state["pid"]))
        figures["workers"], figures["workers_rss_mb"] = workers_memory(state["endpoint"])
    finally:
        control.down(ROOT, sdir=sdir)
    print("embedded local AWS")
    print(f"  cold `sesflow local up`          {figures['local_up_s']:6.2f} s")
    print(f"  trivial `sesflow run` (CLI)      {figures['trivial_run_cli_s']:6.2f} s   (process start + run + table)")
    print(f"  first send (cold handlers)       {figures['first_send_s'] * 1000:6.0f} ms")
    print(
        f"  one send end to end, median      {figures['send_latency_median_s'] * 1000:6.0f} ms   "
        f"(p90 {figures['send_latency_p90_s'] * 1000:.0f} ms, {args.sends} sends)"
    )
    print(
        f"  state transitions, happy path    {figures['happy_path_transitions']:6.0f}     (target <= 8: "
        f"{'met' if figures['happy_path_transitions'] <= 8 else 'NOT met'})"
    )
    print(
        f"  peak memory of the local stack   {figures['peak_rss_mb'] + figures['workers_rss_mb']:6.0f} MB  (VmHWM of "
        f"the server process, {figures['peak_rss_mb']:.0f} MB, and of its {figures['workers']:.0f} Lambda worker "
        f"processes, {figures['workers_rss_mb']:.0f} MB)"
    )
    return figures


if __name__ == "__main__":
    main()
