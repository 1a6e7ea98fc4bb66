"""Distributed plan throughput (``sesflow_core.campaign.chunks``): the chunk phase and the merge
phase timed apart, each in a fresh process (its own peak RSS), on bench.planner's list (the
same generator, imported), then the arithmetic for 10,000,000 rows in AWS. The single-process
Planner plans the same list too, and its output is compared with the merge's (they must be
identical byte for byte).

    python -m bench.plan_chunks [--rows 1000000] [--chunk-rows 500000] [--skip-single]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import planner as single_bench

ROOT = Path(__file__).resolve().parent.parent
KEY = "r.csv"

#: the arithmetic's AWS: S3 throughput of one function's stream (MB/s), a function's cold start
#: (s), the rows a Map item plans, and the list's size
S3_MB_S = 90
COLD_START_S = 1.0
TEN_MILLION = 10_000_000
#: the deployed stack's chunk size (template.yaml's CampaignPlanChunkKiB) and PlanChunks'
#: MaxConcurrency (statemachines/campaign.asl.json)
AWS_CHUNK_BYTES = 32768 * 1024
AWS_MAX_CONCURRENCY = 40


def list_rows() -> type:
    """bench.planner's list generator (``Rows(n)``: the CSV as a raw stream), taken from the
    code it runs in its subprocesses, so both benchmarks plan the very same bytes."""
    code = single_bench._CODE.format(n=0, fast=True, trace=False)
    namespace: dict[str, Any] = {"io": io}
    exec(code[code.index("DOMAINS = ") : code.index("raw = ")], namespace)
    rows: type = namespace["Rows"]
    return rows


def write_list(path: Path, rows: int) -> None:
    with open(path, "wb") as f:
        shutil.copyfileobj(io.BufferedReader(list_rows()(rows), 1 << 16), f, 1 << 20)


def spec() -> Any:
    from sesflow_core import campaign as cp

    raw = {"campaignId": "bench", "template": "t", "recipients": {"bucket": "b", "key": KEY}, "stages": [1, 10, 100]}
    return cp.CampaignSpec.from_input(raw)


def _opener(path: Path) -> Any:
    def open_from(pos: int) -> io.BufferedReader:
        f = open(path, "rb")  # the reader closes it
        f.seek(pos)
        return f

    return open_from


def _digest(paths: list[str]) -> str:
    """One hash of the files' names and bytes (read in blocks: the RSS is the plan's)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(os.path.basename(p).encode() + b"\0")
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- phases (each its own process)
def phase_chunks(path: Path, rows: int, chunk_rows: int, work: Path) -> dict[str, Any]:
    """Every chunk, one after the other (in AWS: at the same time, one function each)."""
    from sesflow_core.campaign import chunks as ch

    size = path.stat().st_size
    chunk_bytes = -(-size * chunk_rows // rows)  # ~chunk_rows rows each
    s = spec()
    started = time.perf_counter()
    header = ch.read_header(_opener(path), KEY)
    seconds, results = [], []
    for start, end in ch.split(size, chunk_bytes):
        t = time.perf_counter()
        results.append(ch.plan_chunk(s, ch.ChunkRows(_opener(path), KEY, start, end, header), str(work)))
        seconds.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    written = [sum(os.path.getsize(os.path.join(r.dir, f)) for f in r.files()) for r in results]
    (work / "results.json").write_text(json.dumps([r.as_dict() for r in results]))
    return {
        "seconds": total,
        "chunk_seconds": seconds,
        "chunk_bytes": [r.end - r.start for r in results],
        "written_bytes": written,
        "chunk_rows": [r.rows for r in results],
        "maxrss_mb": _rss_mb(),
    }


def phase_merge(work: Path) -> dict[str, Any]:
    from sesflow_core.campaign import chunks as ch

    results = [ch.ChunkResult.from_dict(r) for r in json.loads((work / "results.json").read_text())]
    t = time.perf_counter()
    merged = ch.merge(spec(), results, ch.local_files(results), lambda a: set(), str(work))
    seconds = time.perf_counter() - t
    rss = _rss_mb()
    files = [p[0] for stage in merged.parts for p in stage]
    return {
        "seconds": seconds,
        "read_bytes": sum(os.path.getsize(os.path.join(r.dir, f)) for r in results for f in r.files()),
        "written_bytes": sum(os.path.getsize(p) for p in [*files, merged.rejects]),
        "digest": _digest([*files, merged.rejects]),
        "counts": merged.counts.as_dict(),
        "maxrss_mb": rss,
    }


def phase_single(path: Path, work: Path) -> dict[str, Any]:
    from sesflow_core import campaign as cp

    planner = cp.Planner(spec(), workdir=str(work))
    t = time.perf_counter()
    with open(path, "rb") as f:
        _, rejects = planner.plan(cp.iter_rows(f, KEY), lambda a: set())
    seconds = time.perf_counter() - t
    rss = _rss_mb()
    files = [p[0] for stage in planner.parts for p in stage]
    return {
        "seconds": seconds,
        "digest": _digest([*files, rejects]),
        "counts": planner.counts.as_dict(),
        "maxrss_mb": rss,
    }


def _run(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.plan_chunks", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"phase {args[1]} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# ---------------------------------------------------------------- report
def ten_million(
    rows: int,
    list_bytes: int,
    chunks: dict[str, Any],
    merged: dict[str, Any],
    single: dict[str, Any] | None,
) -> None:
    """10,000,000 rows in AWS: the chunks in parallel, then the merge (each at this machine's
    per-row times on one vCPU, 1,769 MB, and S3 at S3_MB_S per function)."""
    scale = TEN_MILLION / rows
    per_row_chunk = chunks["seconds"] / rows
    per_row_merge = merged["seconds"] / rows
    # the ranges the deployed Plan cuts (chunks.split of the list at CampaignPlanChunkKiB)
    n_chunks = -(-int(list_bytes * scale) // AWS_CHUNK_BYTES)
    chunk_rows = -(-TEN_MILLION // n_chunks)
    waves = -(-n_chunks // AWS_MAX_CONCURRENCY)
    chunk_in = list_bytes / rows * chunk_rows / 1e6  # MB of the list a chunk reads
    chunk_out = sum(chunks["written_bytes"]) / rows * chunk_rows / 1e6  # MB of bucket files it writes
    chunk_cpu = per_row_chunk * chunk_rows
    chunk_io = (chunk_in + chunk_out) / S3_MB_S
    chunk_total = (COLD_START_S + chunk_cpu + chunk_io) * waves
    merge_in = merged["read_bytes"] * scale / 1e6
    merge_out = merged["written_bytes"] * scale / 1e6
    merge_cpu = per_row_merge * TEN_MILLION
    merge_io = (merge_in + merge_out) / S3_MB_S
    merge_total = COLD_START_S + merge_cpu + merge_io
    print(
        f"  10,000,000 rows in AWS (arithmetic; assumed: a function's vCPU (1,769 MB) is this machine's core, "
        f"S3 at {S3_MB_S} MB/s per function, {COLD_START_S:.0f} s cold start, suppression from the plan's one Scan)"
    )
    print(
        f"    chunk phase: {n_chunks} chunks of {chunk_rows:,} rows (CampaignPlanChunkKiB=32768) at the same time "
        f"(PlanChunks, MaxConcurrency {AWS_MAX_CONCURRENCY}): "
        f"{COLD_START_S:.0f} s + {chunk_cpu:.1f} s CPU + {chunk_io:.1f} s S3 ({chunk_in:.0f} MB read, "
        f"{chunk_out:.0f} MB of buckets written) = {chunk_total:.1f} s"
    )
    print(
        f"    merge phase: one function, {per_row_merge * 1e6:.2f} us/row x 10,000,000 = {merge_cpu:.0f} s CPU + "
        f"{COLD_START_S:.0f} s + {merge_io:.0f} s S3 ({merge_in:.0f} MB of buckets read, {merge_out:.0f} MB of "
        f"manifests and rejects written) = {merge_total:.0f} s"
    )
    alone = ""
    if single is not None:  # bench.planner's arithmetic, at this run's single-process speed
        single_cpu = single["seconds"] / rows * TEN_MILLION
        single_io = (list_bytes * scale + merged["written_bytes"] * scale) / 1e6 / S3_MB_S
        alone = f" (one process: {single_cpu:.0f} s CPU + {single_io:.0f} s S3 = {single_cpu + single_io:.0f} s)"
    print(f"    total ~ {chunk_total + merge_total:.0f} s{alone}")
    print(f"    (the merge downloads one object per chunk, {n_chunks} GETs, and reads each bucket's pieces from them)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=500_000)
    parser.add_argument("--skip-single", action="store_true", help="no single-process plan to compare with")
    parser.add_argument("--phase", choices=["chunks", "merge", "single"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:  # a subprocess of main()
        work = Path(args.work)
        path = work / "list.csv"
        if args.phase == "chunks":
            out = phase_chunks(path, args.rows, args.chunk_rows, work)
        elif args.phase == "merge":
            out = phase_merge(work)
        else:
            out = phase_single(path, work)
        print(json.dumps(out))
        return
    work = Path(tempfile.mkdtemp(prefix="sesflow-bench-chunks-"))
    try:
        report(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, work: Path) -> None:
    rows, chunk_rows = args.rows, args.chunk_rows
    write_list(work / "list.csv", rows)
    size = (work / "list.csv").stat().st_size
    common = ["--work", str(work), "--rows", str(rows), "--chunk-rows", str(chunk_rows)]
    chunks = _run("--phase", "chunks", *common)
    merged = _run("--phase", "merge", *common)
    n = len(chunks["chunk_seconds"])
    print(
        f"distributed plan, {rows:,} rows (bench.planner's list, {size / 1e6:.1f} MB), {n} chunks of ~{chunk_rows:,} "
        "rows, suppression lookups stubbed, each phase in its own process"
    )
    print(
        f"  chunk phase (the chunks one after the other) {rows / chunks['seconds']:>9,.0f} rows/s  "
        f"{chunks['seconds']:6.1f} s  slowest chunk {max(chunks['chunk_seconds']):.1f} s  "
        f"buckets written {sum(chunks['written_bytes']) / 1e6:.0f} MB  max RSS {chunks['maxrss_mb']:.0f} MB"
    )
    c = merged["counts"]
    print(
        f"  merge phase                                  {rows / merged['seconds']:>9,.0f} rows/s  "
        f"{merged['seconds']:6.1f} s  planned {sum(c['planned']):,}  invalid {c['invalid']:,}  "
        f"duplicates {c['duplicates']:,}  max RSS {merged['maxrss_mb']:.0f} MB"
    )
    single = None
    if not args.skip_single:
        single = _run("--phase", "single", *common)
        same = single["digest"] == merged["digest"] and single["counts"] == merged["counts"]
        print(
            f"  single process (Planner.plan)                {rows / single['seconds']:>9,.0f} rows/s  "
            f"{single['seconds']:6.1f} s  max RSS {single['maxrss_mb']:.0f} MB; manifests, rejects and counts "
            f"identical to the merge's: {'yes' if same else 'NO'}"
        )
    ten_million(rows, size, chunks, merged, single)


if __name__ == "__main__":
    main()
