"""A distributed plan: the list read in byte ranges by many functions, then one exact merge.

One process plans about 53,000 rows/s (``bench.planner``): 10,000,000 rows take some 190 s of a
plan function's one vCPU. Most of that is reading and validating rows, which needs no state
from other rows; only de-duplication, the suppression lookups and the cutting into batches do.
So the plan splits in two phases:

* the **chunk phase** (one function per byte range, a Step Functions Distributed Map):
  :func:`split` cuts the file into ranges, :class:`ChunkRows` reads the rows of one range (a
  line belongs to the range its first byte lies in), and :func:`plan_chunk` does what
  ``Planner._plan`` does before its bucket loop, with the Planner's own row step
  (``Planner._bucketed``: validation, the merged-data check, the preview, the bucket and the
  line), up to the hash-bucket files and rejects, which the function uploads for the merge;
* the **merge phase** (one function): :func:`merge` runs the Planner's own bucket loop (a
  ``Planner`` subclass), each bucket being the chunks' files of that bucket one after the
  other, in chunk order.

Why the result is *exact*: a bucket file of the single-process planner holds its bucket's rows
in row order; the chunks' files of one bucket, concatenated in chunk order, hold the same lines
in the same order (only the row number, which the bucket loop does not read, counts from the
chunk). The merge then sees every bucket exactly as the Planner would: the same first
occurrence wins a duplicate, the same suppression lookups are made (carried across buckets),
and the same batches, parts and slots are cut. The manifests, rejects.csv and counts are
byte-for-byte those of ``Planner.plan(iter_rows(...))`` (``tests/unit/test_plan_chunks.py``
compares them over generated lists and many chunk sizes).

Row numbers. ``iter_rows`` numbers CSV rows 1 + the ordinal of the non-blank record (the header
is row 1, blank lines are not counted) and JSONL rows by line (blank lines counted). A chunk
cannot know how many rows come before it, so it numbers its own from 1 and reports how many
numbers it used (:attr:`ChunkRows.numbered`: the CSV header, in chunk 0, takes one like
``iter_rows``'s); a row's number in the list is its chunk's number plus the numbers of all the
chunks before. Chunk 0's numbers are therefore the list's already.

One CSV feature cannot be read by byte ranges: a line break inside a quoted field (the record
spans lines, and whichever function reads the second line cannot tell it is inside quotes).
Each line is parsed on its own, so a list gives the same rows however it is cut; a line whose
quotes are still open at its end becomes an invalid row (:data:`MULTILINE_REASON`) and the
lines after it are rows of their own (:attr:`ChunkResult.broken` counts such lines: a caller
may plan such a list in one process instead). A line break is a ``\\n``; a bare ``\\r`` still ends a
record, as it does in ``iter_rows``. The UTF-8 byte order mark is skipped only at offset 0.

In AWS (``sesflow_aws.campaign_flow``, ADR 0016): ``plan`` reads the list's size, previews
the first rows (chunk 0's rows from the start, which read and check the CSV header: its
:attr:`ChunkRows.header` is what the other chunks get) and returns the ranges of :func:`split` (at most
``CampaignPlanChunkKiB`` each) for the machine's PlanChunks Map; ``plan_chunk`` reads its range
with ``open_from(pos)`` being a GetObject of ``bytes=pos-``, runs :func:`plan_chunk` in /tmp and
uploads :meth:`ChunkResult.files` as one object with an index; ``merge_plan`` downloads the
chunks' objects, runs :func:`merge` and publishes the plan as ``plan`` does.
``bench.plan_chunks`` times both phases: the merge, one process, is the longer one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any, NamedTuple

from ..errors import InvalidCampaign, InvalidEmailRequest
from .planner import BUCKETS, PlanCounts, Planner, _Writers, bucket_file
from .spec import CampaignSpec

#: the reason of a row whose line ends inside a quoted field (see the module's docstring)
MULTILINE_REASON = "a line break inside a quoted field is not supported for lists planned in chunks"
#: a chunk's rejects, when it has any: a JSON line ``[row, reason]`` each (the chunk's row numbers)
REJECTS_FILE = "rejects.jsonl"
#: the bytes from the list's start in which a distributed plan previews the first valid rows
#: (``Planner.PREVIEW_ROWS`` of them, or those there are in it)
PREVIEW_BYTES = 1 << 20
_NO_EMAIL = "the CSV header must contain an 'email' column"  # iter_rows's words

#: ``open_from(pos)``: the list from byte ``pos`` to its end (in AWS an S3 GetObject with
#: ``Range: bytes=pos-``, closed once the chunk has its lines)
OpenFrom = Callable[[int], IO[bytes]]
#: ``open_file(chunk, name)``: a file a chunk wrote (:meth:`ChunkResult.files`), in bytes
OpenFile = Callable[[int, str], IO[bytes]]


def is_jsonl(key: str) -> bool:
    """JSONL or CSV, as ``iter_rows`` decides it (by the key's extension)."""
    return key.lower().endswith((".jsonl", ".ndjson", ".json"))


def split(size: int, chunk_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges ``[start, end)`` covering a file of ``size`` bytes, each at most
    ``chunk_bytes``: as few as that allows, of equal sizes (within a byte), so the Map's
    functions take about as long as each other (no short last chunk). An empty file is one
    empty range: its chunk 0 still finds that the CSV header is missing."""
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be at least 1")
    if size <= 0:
        return [(0, 0)]
    n = -(-size // chunk_bytes)
    bounds = [size * k // n for k in range(n + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(n)]


def _universal_lines(text: str) -> list[str]:
    """One line of the file (up to its ``\\n``) as ``iter_rows``'s text stream (``newline=""``)
    gives it: also cut after a bare ``\\r``. Nearly every line has none but a CRLF ending."""
    cr = text.find("\r")
    if cr < 0 or cr == len(text) - 1 or (cr == len(text) - 2 and text[-1] == "\n"):
        return [text]
    return list(io.StringIO(text, newline=""))


def _csv_records(text: str) -> list[list[str]]:
    """The CSV records of one line of the file. A line without quotes or a bare CR (most of
    them) is ``csv.reader``'s record by a plain split on commas (the excel dialect has nothing
    else that is special); anything else goes through ``csv.reader``."""
    body = text[:-1] if text.endswith("\n") else text
    if body.endswith("\r"):
        body = body[:-1]
    if '"' not in body and "\r" not in body:
        return [body.split(",")] if body else [[]]
    return list(csv.reader(_universal_lines(text)))


class ChunkRows:
    """The rows (number, row) of the lines that start in ``[start, end)`` of the list ``key``,
    as ``iter_rows`` gives them but numbered from the chunk (see the module's docstring);
    :attr:`numbered` is how many numbers the chunk used once iterated.

    For a CSV, chunks after the first need the file's ``header`` (:func:`read_header`; the
    stripped field names); chunk 0 reads it from the file and checks it has an ``email``
    column (``InvalidCampaign`` otherwise, like ``iter_rows``).
    """

    def __init__(self, open_from: OpenFrom, key: str, start: int, end: int, header: list[str] | None = None) -> None:
        if not 0 <= start <= end:
            raise ValueError(f"not a byte range: [{start}, {end})")
        self.open_from, self.key, self.start, self.end = open_from, key, start, end
        self.jsonl = is_jsonl(key)
        if not self.jsonl and start > 0 and header is None:
            raise ValueError("a CSV chunk after the first needs the file's header (read_header)")
        self.header: list[str] | None = None if start == 0 else header
        self.numbered = 0  # row numbers used: CSV records (with chunk 0's header), JSONL lines
        self.broken = 0  # lines that end inside a quoted field (MULTILINE_REASON)

    def lines(self) -> Iterator[str]:
        """The decoded lines (each up to and with its ``\\n``) that start in the range."""
        stream = self.open_from(max(self.start - 1, 0))
        try:
            pos = self.start
            if self.start > 0:
                # the line that holds byte start-1 is the previous chunk's: it ends at the first
                # "\n" from there (that byte itself when the previous line ends just before start)
                skipped = stream.readline()
                if not skipped.endswith(b"\n"):
                    return  # the file ends in that line
                pos = self.start - 1 + len(skipped)
            encoding = "utf-8-sig" if self.start == 0 else "utf-8"  # the BOM only at offset 0
            while pos < self.end:
                line = stream.readline()
                if not line:
                    return
                pos += len(line)
                yield line.decode(encoding)
                encoding = "utf-8"
        finally:
            stream.close()

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        self.numbered = self.broken = 0
        if self.jsonl:
            yield from self._jsonl()
        else:
            yield from self._csv()

    def _jsonl(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for text in self.lines():
            for line in _universal_lines(text):
                self.numbered += 1
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    yield self.numbered, {"__error__": "not valid JSON"}
                    continue
                yield self.numbered, row if isinstance(row, dict) else {"__error__": "not a JSON object"}

    def _csv(self) -> Iterator[tuple[int, dict[str, Any]]]:
        names = self.header
        for text in self.lines():
            records = _csv_records(text)
            # quotes still open at the line's end: csv.reader (not strict) ends the field with
            # the "\n" in it, which no balanced line can give (the "\n" is the line's last byte)
            open_quote = text.endswith("\n") and bool(records) and bool(records[-1]) and records[-1][-1].endswith("\n")
            for i, values in enumerate(records):
                if names is None:  # chunk 0: the first record is the header (row 1)
                    names = self.header = _header(values, open_quote and i == len(records) - 1)
                    self.numbered += 1
                    continue
                if not values:
                    continue
                self.numbered += 1
                if open_quote and i == len(records) - 1:
                    self.broken += 1
                    yield self.numbered, {"__error__": MULTILINE_REASON}
                    continue
                record: dict[str, Any] = dict(zip(names, values, strict=False))
                if len(values) < len(names):
                    for k in names[len(values) :]:
                        record[k] = None
                yield self.numbered, record
        if names is None:  # no line at all: no header
            raise InvalidCampaign(_NO_EMAIL)


def _header(values: list[str], open_quote: bool) -> list[str]:
    if open_quote:
        raise InvalidCampaign(f"the CSV header: {MULTILINE_REASON}")
    names = [f.strip() for f in values]
    if "email" not in [f.lower() for f in names]:
        raise InvalidCampaign(_NO_EMAIL)
    return names


def read_header(open_from: OpenFrom, key: str) -> list[str] | None:
    """The CSV header's field names (stripped) for the chunks after the first; None for JSONL.
    ``InvalidCampaign`` when it has no ``email`` column. Reads the file's first line only."""
    if is_jsonl(key):
        return None
    rows = ChunkRows(open_from, key, 0, 1)  # the range of byte 0: the first line
    for _ in rows:
        pass
    return rows.header


# ---------------------------------------------------------------- chunk phase
@dataclass
class ChunkResult:
    """What a chunk's function returns (a Map item's result: JSON, about 1 KB with all 256
    buckets): its range, counts, the non-empty buckets and where its files are."""

    start: int
    end: int
    numbered: int  # row numbers the chunk used: the chunks after it count on from the sum
    rows: int  # rows read (PlanCounts.rows)
    invalid: int  # of them rejected (PlanCounts.invalid), in its REJECTS_FILE
    broken: int  # lines ending inside a quoted field (MULTILINE_REASON), counted in invalid
    buckets: list[int] = field(default_factory=list)  # the buckets with lines, ascending
    dir: str = ""  # the local directory of the files (files())

    def files(self) -> list[str]:
        """The names of the files the merge reads (what a function uploads): the non-empty
        buckets', and the rejects' when there are any."""
        return [bucket_file(i) for i in self.buckets] + ([REJECTS_FILE] if self.invalid else [])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ChunkResult:
        return cls(**raw)


def plan_chunk(
    spec: CampaignSpec,
    rows: ChunkRows,
    workdir: str | None = None,
    preview: Callable[[dict[str, Any]], Any] | None = None,
) -> ChunkResult:
    """The chunk phase for one range: what ``Planner._plan`` does before its bucket loop
    (parsing, validation, the merged-data check, rejects, the preview, the bucket files with
    its bucket function and line format, the line's row number the chunk's own), in a new
    directory under ``workdir`` that holds :meth:`ChunkResult.files` and nothing else.

    ``preview`` (the Planner's, same message) is used by chunk 0 only, on its first
    ``Planner.PREVIEW_ROWS`` valid rows: those are the list's first valid rows, the rows the
    Planner previews (unless chunk 0 holds fewer), and chunk 0's row numbers are the list's.
    Other chunks ignore it, so every function of the Map may be given the same arguments.
    """
    # a Planner for its directory, counts and merged-data check (the chunk reads no bucket)
    planner = Planner(spec, workdir, preview if rows.start == 0 else None)
    try:
        buckets = _chunk_buckets(planner, rows)
    except BaseException:
        planner.cleanup()
        raise
    c = planner.counts
    return ChunkResult(rows.start, rows.end, rows.numbered, c.rows, c.invalid, rows.broken, buckets, planner.dir)


def _chunk_buckets(planner: Planner, rows: ChunkRows) -> list[int]:
    """Planner._plan's row loop (its ``_bucketed``: validation, preview, bucket and line); a
    bucket's file (or the rejects') is opened at its first line, so a small chunk does not
    create and remove 256 files."""
    files: dict[int, IO[str]] = {}
    rejects: IO[str] | None = None
    counts = planner.counts
    try:
        for n, row in rows:
            counts.rows += 1
            try:
                b, line = planner._bucketed(n, row)
            except InvalidEmailRequest as exc:
                counts.invalid += 1
                if rejects is None:
                    rejects = open(os.path.join(planner.dir, REJECTS_FILE), "w", encoding="utf-8")
                rejects.write(json.dumps([n, str(exc)]) + "\n")  # JSON: any reason reads back as it was
                continue
            f = files.get(b)
            if f is None:
                f = files[b] = open(planner._bucket_path(b), "w", encoding="utf-8")
            f.write(line)
    finally:
        for f in [*files.values(), *([rejects] if rejects else [])]:
            f.close()
    return sorted(files)


# ---------------------------------------------------------------- merge phase
class Merged(NamedTuple):
    manifests: list[str]  # the first part's path per stage (Planner.plan's first value)
    rejects: str  # rejects.csv: the Planner's, byte for byte
    parts: list[list[list[Any]]]  # Planner.parts: per stage, [path, recipients, batches, slot]
    counts: PlanCounts


class _MergePlanner(Planner):
    """The Planner's bucket loop over the chunks' files: before the Planner reads bucket ``i``,
    its file is made of the chunks' files of bucket ``i`` in chunk order, i.e. in row order."""

    def __init__(
        self, spec: CampaignSpec, workdir: str | None, chunks: Sequence[ChunkResult], open_file: OpenFile
    ) -> None:
        super().__init__(spec, workdir)
        self._holders: list[list[int]] = [[] for _ in range(BUCKETS)]  # per bucket, the chunks with lines
        for k, c in enumerate(chunks):
            for i in c.buckets:
                self._holders[i].append(k)
        self._open = open_file

    def _plan_bucket(self, i: int, writers: _Writers, suppressed: Callable[[list[str]], set[str]]) -> None:
        with open(self._bucket_path(i), "wb") as out:
            for k in self._holders[i]:
                with self._open(k, bucket_file(i)) as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        super()._plan_bucket(i, writers, suppressed)


def merge(
    spec: CampaignSpec,
    chunks: Sequence[ChunkResult],
    open_file: OpenFile,
    suppressed: Callable[[list[str]], set[str]],
    workdir: str | None = None,
) -> Merged:
    """The merge phase: the chunks' results (in chunk order, as :func:`split` gave the ranges)
    -> the stage manifests, rejects.csv, parts and counts of ``Planner.plan`` over the whole
    list, byte for byte. ``open_file(k, name)`` opens a file of chunk ``k``
    (:meth:`ChunkResult.files`); ``suppressed`` is called as the Planner calls it. The files
    are in a new directory under ``workdir`` (the rejects' directory), removed on failure."""
    _check_ranges(chunks)
    planner = _MergePlanner(spec, workdir, chunks, open_file)
    # Planner.plan over no rows: the rejects' header, then the bucket loop (_plan_bucket above)
    manifests, rejects = planner.plan((), suppressed)
    try:
        planner.counts.rows = sum(c.rows for c in chunks)
        planner.counts.invalid = sum(c.invalid for c in chunks)
        with open(rejects, "a", newline="", encoding="utf-8") as rf:
            out = csv.writer(rf)
            offset = 0  # the row numbers the chunks before this one used
            for k, c in enumerate(chunks):
                if c.invalid:
                    with io.TextIOWrapper(open_file(k, REJECTS_FILE), encoding="utf-8") as f:
                        for line in f:
                            n, reason = json.loads(line)
                            out.writerow([n + offset, reason])
                offset += c.numbered
    except BaseException:
        planner.cleanup()
        raise
    return Merged(manifests, rejects, planner.parts, planner.counts)


def _check_ranges(chunks: Sequence[ChunkResult]) -> None:
    """The numbering is only right over every chunk, in order: refuse a gap or a shuffle."""
    if not chunks:
        raise ValueError("no chunk results: a list has at least one chunk")
    at = 0
    for k, c in enumerate(chunks):
        if c.start != at or c.end < c.start:
            raise ValueError(f"chunk {k} covers [{c.start}, {c.end}): the chunks must cover the list in order from 0")
        at = c.end


def local_files(chunks: Sequence[ChunkResult]) -> OpenFile:
    """``open_file`` for chunks whose files are still in their local directories (tests, the
    benchmark, a local run)."""
    return lambda k, name: open(os.path.join(chunks[k].dir, name), "rb")
