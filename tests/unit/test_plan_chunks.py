"""The distributed plan (campaign.chunks): the rows of byte-range chunks are ``iter_rows``'s with
the same numbers, and a list planned in chunks then merged gives the single-process Planner's
manifests, rejects.csv, counts and suppression lookups byte for byte."""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import os
import random
import shutil
import zlib
from pathlib import Path
from typing import Any

import pytest
from sesflow_core import campaign as cp
from sesflow_core.campaign import chunks as ch
from sesflow_core.clock import Clock
from sesflow_core.errors import InvalidCampaign
from sesflow_core.request import MAX_DATA_BYTES

#: 2026-01-05T08:00:00Z, a Monday in winter (New York -05:00, Berlin +01:00): the slots stay put
FIXED_NOW = 1_767_600_000.0


def opener(data: bytes) -> ch.OpenFrom:
    """``open_from`` over bytes in memory (S3's ``Range: bytes=pos-``)."""

    def open_from(pos: int) -> io.BytesIO:
        f = io.BytesIO(data)
        f.seek(pos)
        return f

    return open_from


def chunked_rows(data: bytes, key: str, ranges: list[tuple[int, int]]) -> list[tuple[int, dict[str, Any]]]:
    """Every chunk's rows with the list's numbers: the chunk's own plus the chunks' before."""
    header = ch.read_header(opener(data), key)
    out: list[tuple[int, dict[str, Any]]] = []
    offset = 0
    for start, end in ranges:
        rows = ch.ChunkRows(opener(data), key, start, end, header)
        out += [(n + offset, row) for n, row in rows]
        offset += rows.numbered
    return out


def single_rows(data: bytes, key: str) -> list[tuple[int, dict[str, Any]]]:
    return list(cp.iter_rows(io.BytesIO(data), key))


# ---------------------------------------------------------------- split and the reader
def test_split_covers_the_file_with_even_ranges_no_larger_than_asked() -> None:
    assert ch.split(10, 3) == [(0, 2), (2, 5), (5, 7), (7, 10)]  # 4 ranges of 2-3 bytes, no 1-byte tail
    assert ch.split(10, 10) == [(0, 10)] == ch.split(10, 50)
    assert ch.split(3, 1) == [(0, 1), (1, 2), (2, 3)]
    assert ch.split(0, 100) == [(0, 0)]  # an empty file: one chunk, which finds no header
    for size in (1, 7, 1000, 10_007):
        for chunk_bytes in (1, 2, 3, 64, 999, 10_000):
            ranges = ch.split(size, chunk_bytes)
            assert ranges[0][0] == 0 and ranges[-1][1] == size
            assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
            assert all(0 < e - s <= chunk_bytes for s, e in ranges)
            assert len(ranges) == -(-size // chunk_bytes)
    with pytest.raises(ValueError):
        ch.split(10, 0)


#: a BOM, CRLF and LF, blank lines (also at the start of data and as CRLF), a bare CR that
#: ends a record, quoted commas and quotes, a header with spaces and case, a short row, an
#: extra field, a non-ASCII row and no newline at the end
NASTY_CSV = (
    "\ufeff Email , Name,x\r\n\r\na@b.org,A,1\n\nc@d.org\r\n"
    '"e@f.org","q,""x""",z,extra\ng@h.org\r,cr\n  \n\n\nzoë@b.org,Zoë,é\n\r\ni@j.org,I'
).encode()
#: the same for JSONL: blank and whitespace lines (counted), broken JSON, not an object, a
#: bare CR between two objects (two lines, as iter_rows's text stream reads it), U+2028 inside
#: a string (not a line break) and no newline at the end
NASTY_JSONL = (
    '\ufeff{"email": "a@b.org"}\r\n\n{bad\n  \n[1]\n{"email":"c@d.org"}\r{"email":"e@f.org","n":"\u2028"}\n'
    '\r\n{"email": "zoë@b.org", "data": {"k": "v"}}\n\n{"email": "i@j.org"}'
).encode()


@pytest.mark.parametrize(("data", "key"), [(NASTY_CSV, "r.csv"), (NASTY_JSONL, "r.jsonl")])
def test_every_cut_of_a_nasty_list_gives_iter_rows_rows_and_numbers(data: bytes, key: str) -> None:
    """Two chunks cut at every byte (on a newline, just after one, inside a CRLF, inside a
    multi-byte character, at the end) and every even split: the rows and numbers are iter_rows's."""
    expected = single_rows(data, key)
    assert len(expected) >= 7 and expected[-1][0] > len(expected)  # blank lines are in the numbers
    size = len(data)
    for cut in range(1, size + 1):
        assert chunked_rows(data, key, [(0, cut), (cut, size)]) == expected, cut
    for chunk_bytes in range(1, size + 1):
        assert chunked_rows(data, key, ch.split(size, chunk_bytes)) == expected, chunk_bytes


def test_a_line_belongs_to_the_chunk_of_its_first_byte() -> None:
    data = b"email\nab@c.org\nde@f.org\n"  # lines start at 0, 6 and 15
    header = ch.read_header(opener(data), "r.csv")
    assert header == ["email"]

    def emails(start: int, end: int) -> list[tuple[int, Any]]:
        return [(n, r["email"]) for n, r in ch.ChunkRows(opener(data), "r.csv", start, end, header)]

    assert emails(6, 7) == [(1, "ab@c.org")]  # starts just after a newline: the line is its
    assert emails(5, 6) == []  # the boundary on the newline itself: the line starts at 6
    assert emails(7, 15) == [] and emails(14, 15) == []  # no line starts in the chunk
    assert emails(7, 16) == [(1, "de@f.org")]
    assert emails(24, 24) == []  # past the end
    rows = ch.ChunkRows(opener(data), "r.csv", 0, 6)
    assert list(rows) == [] and rows.numbered == 1  # chunk 0: the header is row 1
    rows = ch.ChunkRows(opener(data), "r.csv", 8, 12, header)
    assert list(rows) == [] and rows.numbered == 0


def test_a_chunk_reads_only_from_the_byte_before_it_to_its_last_line_s_end() -> None:
    """The stream is read from ``start - 1`` to the end of the chunk's last line (in AWS: a
    GetObject closed there), not to the end of the list."""
    data = b"email\n" + b"".join(f"u{i}@example.org\n".encode() for i in range(1000))
    starts = [0] + [i + 1 for i, byte in enumerate(data[:-1]) if byte == ord("\n")]
    opened: list[int] = []
    closed_at: list[int] = []

    class Stream(io.BytesIO):
        def close(self) -> None:
            closed_at.append(self.tell())
            super().close()

    def open_from(pos: int) -> io.BytesIO:
        opened.append(pos)
        f = Stream(data)
        f.seek(pos)
        return f

    rows = list(ch.ChunkRows(open_from, "r.csv", 100, 200, ["email"]))
    mine = [s for s in starts if 100 <= s < 200]
    assert [r["email"] for _, r in rows] == [data[s : data.index(b"\n", s)].decode() for s in mine]
    assert [n for n, _ in rows] == list(range(1, len(mine) + 1)) and len(mine) == 6
    first_after = min(s for s in starts if s >= 200)
    assert opened == [99] and closed_at == [first_after]  # not a byte of the next chunk's lines


def test_a_line_break_inside_a_quoted_field_is_an_invalid_row_not_a_misread(tmp_path: Path) -> None:
    text = 'email,note\na@x.org,"line one\nline two",tail\nb@x.org,ok\n'
    data = text.encode()
    assert len(single_rows(data, "r.csv")) == 2  # one process joins the lines ...
    rows = chunked_rows(data, "r.csv", [(0, len(data))])
    # ... a chunk cannot (the next function would read "line two" as a row): each line alone
    assert rows == [
        (2, {"__error__": ch.MULTILINE_REASON}),
        (3, {"email": 'line two"', "note": "tail"}),
        (4, {"email": "b@x.org", "note": "ok"}),
    ]
    assert chunked_rows(data, "r.csv", ch.split(len(data), 5)) == rows  # however it is cut
    spec = make_spec("r.csv", stages=[100])
    result = ch.plan_chunk(spec, ch.ChunkRows(opener(data), "r.csv", 0, len(data)), str(tmp_path))
    assert (result.rows, result.invalid, result.broken, result.numbered) == (3, 2, 1, 4)
    merged = ch.merge(spec, [result], ch.local_files([result]), lambda a: set(), str(tmp_path))
    rejects = list(csv.reader(io.StringIO(Path(merged.rejects).read_text(), newline="")))
    assert rejects[1] == ["2", ch.MULTILINE_REASON] and rejects[2][0] == "3"
    assert merged.counts.planned == [1]
    # quotes that close on their line, a CR inside them and the file's last line are fine
    fine = b'email,note\na@x.org,"one, ""two""\rthree"\nb@x.org,"open at the end'
    assert chunked_rows(fine, "r.csv", [(0, 30), (30, len(fine))]) == single_rows(fine, "r.csv")


def test_csv_header_checks() -> None:
    for text in ("name\nx@y.org\n", "", "\nemail\nx@y.org\n", "\r\nemail\n", "e-mail,x\n"):
        data = text.encode()
        with pytest.raises(InvalidCampaign) as single:
            single_rows(data, "r.csv")
        with pytest.raises(InvalidCampaign) as header:
            ch.read_header(opener(data), "r.csv")
        with pytest.raises(InvalidCampaign) as chunk:
            list(ch.ChunkRows(opener(data), "r.csv", *ch.split(len(data), 4)[0]))
        assert str(header.value) == str(chunk.value) == str(single.value)  # iter_rows's words
    # a quoted line break in the header: one process reads on, chunks cannot
    data = b'email,"no\nte",x\na@b.org,1,2\n'
    assert single_rows(data, "r.csv") == [(2, {"email": "a@b.org", "no\nte": "1", "x": "2"})]
    with pytest.raises(InvalidCampaign, match=ch.MULTILINE_REASON):
        ch.read_header(opener(data), "r.csv")
    assert ch.read_header(opener(b'{"email": "a@b.org"}\n'), "r.ndjson") is None
    assert ch.read_header(opener(b"\xef\xbb\xbfE-Mail,EMAIL\n"), "r.CSV") == ["E-Mail", "EMAIL"]
    with pytest.raises(ValueError, match="needs the file's header"):
        ch.ChunkRows(opener(b"email\na@b.org\n"), "r.csv", 3, 9)


def test_the_plain_split_path_is_csv_reader() -> None:
    """Lines without quotes or a bare CR are split on commas; csv.reader says the same."""
    rng = random.Random(7)
    alphabet = ["a", "b", ",", " ", "\t", "é", "\x00", ";", "'", "\\", "\u2028", "\x85", "\x0b"]
    for _ in range(3000):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        for text in (body + "\n", body + "\r\n", body, body + "\r"):
            if text:
                assert ch._csv_records(text) == list(csv.reader(io.StringIO(text, newline=""))), repr(text)


# ---------------------------------------------------------------- plans: chunked = one process
def make_spec(key: str, **kw: Any) -> cp.CampaignSpec:
    raw = {"campaignId": "c1", "template": "newsletter", "recipients": {"bucket": "b", "key": key}, **kw}
    spec = cp.CampaignSpec.from_input(raw)
    return dataclasses.replace(spec, clock=Clock(scale=0.0, start=FIXED_NOW, anchor=0.0))  # a clock standing still


PAD = {"pad": "p" * (MAX_DATA_BYTES - 2600)}  # campaign data: a row's data over ~2.5 KB passes the limit merged
SPECS = {
    "stages": {"stages": [1, 10, 100], "batchSize": 7, "data": PAD},
    "ab": {
        "variants": [{"id": "A", "subject": "a"}, {"id": "B", "subject": "b"}],
        "abTest": {"sample": 20},
        "stages": [60, 100],
        "batchSize": 5,
    },
    "cap-local": {
        "stages": [30, 100],
        "batchSize": 4,
        "dailyCap": 12,
        "localTime": "09:30",
        "timezone": "Europe/Berlin",
        "data": PAD,
    },
}
ZONES = ["", "", "Asia/Tokyo", "America/New_York", "America/Lima", "Europe/Berlin", "Australia/Adelaide", "Mars/X"]
LOCALES = ["", "", "pt_BR", "de", "klingon!"]
NAMES = ["Ada", "Zoë", "李雷", "O'Brien, Jr.", 'The "Boss"', "", "  spaced  "]
NOTES = ["", "plain", "with, comma", 'say "hi"', "cr\rinside", "ünïcödé ✓", "n" * 2700, "n" * 5000]
BAD = ["broken.example.org", "", "a@b", "two@@example.org", " ", "ünï@example.org", "x@-bad-.org"]
DOMAINS = ["example.org", "mail.example.com", "bücher.de", "Example.NET"]


def address(rng: random.Random, pool: int) -> str:
    if rng.random() < 0.07:
        return rng.choice(BAD)
    i = rng.randrange(pool)
    addr = f"user{i}@{DOMAINS[i % 4]}"
    r = rng.random()  # spellings of one address: the first row's wins, wherever the chunks cut
    return addr.upper() if r < 0.15 else addr.title() if r < 0.3 else f"  {addr} " if r < 0.35 else addr


def note(rng: random.Random, small: bool) -> str:
    """A value, now and then too large for a row (4 KiB) or with the campaign's data (PAD)."""
    return rng.choices(NOTES, weights=[30, 30, 10, 10, 3, 10] + ([0, 0] if small else [3, 3]))[0]


def csv_list(rng: random.Random, rows: int, bom: bool, final_newline: bool, small: bool = False) -> bytes:
    out = io.StringIO()
    out.write(("\ufeff" if bom else "") + "email,Name,timezone,locale,note\n")
    pool = max(2, rows * 2 // 3)
    for _ in range(rows):
        end = rng.choice(["\n", "\r\n"])
        values = [address(rng, pool), rng.choice(NAMES), rng.choice(ZONES), rng.choice(LOCALES), note(rng, small)]
        values = values[: rng.choice([5, 5, 5, 5, 2, 1])] + (["extra"] if rng.random() < 0.05 else [])
        line = io.StringIO()
        csv.writer(line, lineterminator=end).writerow(values)
        out.write(line.getvalue())
        r = rng.random()
        if r < 0.08:
            out.write(rng.choice(["\n", "\r\n", "\n\n", "   \n", "\r"]))  # blank lines, a whitespace row
        elif r < 0.1:
            out.write(f"user{rng.randrange(pool)}@example.org\r,bare-cr\n")  # a bare CR ends a record
    text = out.getvalue()
    return (text if final_newline else text.rstrip("\r\n")).encode()


def jsonl_list(rng: random.Random, rows: int, bom: bool, final_newline: bool, small: bool = False) -> bytes:
    lines = []
    pool = max(2, rows * 2 // 3)
    for _ in range(rows):
        r = rng.random()
        row: dict[str, Any] = {"email": address(rng, pool)}
        if r < 0.5:
            row |= {"name": rng.choice(NAMES), "timezone": rng.choice(ZONES), "locale": rng.choice(LOCALES)}
            row["plan"] = note(rng, small)
        elif r < 0.85:
            row["data"] = {"note": note(rng, small), "n": rng.randrange(100), "nested": {"u": "\u2028ü"}}
        elif r < 0.9:
            row = {"email": rng.choice([5, None, ["a@b.org"]])}
        text = json.dumps(row, ensure_ascii=rng.random() < 0.5)
        if r >= 0.96:
            text = rng.choice(["not json {", "[1, 2]", '"a string"', "", "   ", "null"])
        lines.append(text + rng.choice(["\n", "\n", "\r\n"]))
        if rng.random() < 0.03:
            lines.append('{"email": "cr@example.org"}\r{"email": "CR@example.org"}\n')  # a bare CR: two lines
    text = ("\ufeff" if bom else "") + "".join(lines)
    return (text if final_newline else text.rstrip("\r\n")).encode()


class Suppression:
    """Drops about a fifth of the addresses, and records every lookup (its addresses, in order)."""

    def __init__(self) -> None:
        self.lookups: list[list[str]] = []

    def __call__(self, addresses: list[str]) -> set[str]:
        self.lookups.append(list(addresses))
        return {a for a in addresses if zlib.crc32(a.encode()) % 5 == 0}


@dataclasses.dataclass
class Outcome:
    counts: dict[str, Any]
    manifests: list[str]  # file names
    parts: list[list[tuple[str, int, int, int | None, bytes]]]  # per stage: name, recipients, batches, slot, bytes
    rejects: bytes
    lookups: list[list[str]]


def read_parts(parts: list[list[list[Any]]]) -> list[list[tuple[str, int, int, int | None, bytes]]]:
    return [[(os.path.basename(p), n, b, slot, Path(p).read_bytes()) for p, n, b, slot in stage] for stage in parts]


def plan_single(spec: cp.CampaignSpec, data: bytes, key: str, workdir: Path) -> Outcome:
    suppression = Suppression()
    planner = cp.Planner(spec, workdir=str(workdir))
    manifests, rejects = planner.plan(cp.iter_rows(io.BytesIO(data), key), suppression)
    out = Outcome(
        planner.counts.as_dict(),
        [os.path.basename(m) for m in manifests],
        read_parts(planner.parts),
        Path(rejects).read_bytes(),
        suppression.lookups,
    )
    planner.cleanup()
    return out


def plan_chunked(spec: cp.CampaignSpec, data: bytes, key: str, workdir: Path, chunk_bytes: int) -> Outcome:
    header = ch.read_header(opener(data), key)
    results = [
        ch.plan_chunk(spec, ch.ChunkRows(opener(data), key, start, end, header), str(workdir))
        for start, end in ch.split(len(data), chunk_bytes)
    ]
    # what the merge gets is each chunk's result as the Map returns it: JSON
    results = [ch.ChunkResult.from_dict(json.loads(json.dumps(r.as_dict()))) for r in results]
    suppression = Suppression()
    merged = ch.merge(spec, results, ch.local_files(results), suppression, str(workdir))
    out = Outcome(
        merged.counts.as_dict(),
        [os.path.basename(m) for m in merged.manifests],
        read_parts(merged.parts),
        Path(merged.rejects).read_bytes(),
        suppression.lookups,
    )
    for d in [r.dir for r in results] + [os.path.dirname(merged.rejects)]:
        shutil.rmtree(d)
    return out


def assert_same(single: Outcome, chunked: Outcome) -> None:
    assert chunked.counts == single.counts
    assert chunked.manifests == single.manifests
    assert [[p[:4] for p in stage] for stage in chunked.parts] == [[p[:4] for p in stage] for stage in single.parts]
    assert chunked.parts == single.parts  # every part file, byte for byte
    assert chunked.rejects == single.rejects
    assert chunked.lookups == single.lookups  # the same suppression lookups, carried across buckets


def assert_it_tests_something(name: str, out: Outcome) -> None:
    """The generated list has what the comparison is about (else it proves nothing)."""
    c = out.counts
    assert c["duplicates"] > 10 and c["invalid"] > 10 and c["suppressed"] > 5 and sum(c["planned"]) > 50
    assert all(len(lookup) == cp.SUPPRESSION_LOOKUP for lookup in out.lookups[:-1]) and len(out.lookups) > 1
    rejects = out.rejects.decode()
    assert "not a valid address" in rejects and "must be a non-empty string" in rejects
    assert "larger than 4096 bytes" in rejects and "not a known IANA time zone" in rejects
    if name != "ab":
        assert "with the campaign's data is" in rejects  # the merged-data check
    stage0 = [b for p in out.parts[0] for b in json.loads(p[4])]
    if name == "ab":
        assert {r["variant"] for b in stage0 for r in b["recipients"]} == {"A", "B"}
    if name == "cap-local":
        parts = out.parts[-1]
        slots = {p[3] for p in parts}
        assert len(slots) >= 4 and len(parts) > len(slots)  # several slots, a slot in several parts


CASES = [
    (fmt, name, seed, bom, final)
    for seed, (fmt, name, bom, final) in enumerate(
        [
            ("csv", "stages", True, False),
            ("csv", "ab", False, True),
            ("csv", "cap-local", False, False),
            ("jsonl", "stages", False, True),
            ("jsonl", "ab", True, False),
            ("jsonl", "cap-local", True, True),
        ]
    )
]


@pytest.mark.parametrize(("fmt", "name", "seed", "bom", "final_newline"), CASES)
def test_a_list_planned_in_chunks_is_the_single_process_plan_byte_for_byte(
    tmp_path: Path, fmt: str, name: str, seed: int, bom: bool, final_newline: bool
) -> None:
    rng = random.Random(seed)
    key = f"list.{fmt}"
    data = (csv_list if fmt == "csv" else jsonl_list)(rng, 400, bom, final_newline)
    spec = make_spec(key, **SPECS[name])
    single = plan_single(spec, data, key, tmp_path)
    assert_it_tests_something(name, single)
    for chunk_bytes in (len(data) // 97, len(data) // 9, len(data) // 2 + 1, len(data)):
        assert_same(single, plan_chunked(spec, data, key, tmp_path, chunk_bytes))
    assert len(ch.split(len(data), len(data) // 97)) >= 97  # ~4 rows a chunk: many lines cut


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_chunks_smaller_than_a_line_still_plan_exactly(tmp_path: Path, fmt: str) -> None:
    """Chunks of 1-40 bytes: most hold no line start, many lines span several chunks."""
    rng = random.Random(99)
    key = f"list.{fmt}"
    data = (csv_list if fmt == "csv" else jsonl_list)(rng, 30, True, False, small=True)
    spec = make_spec(key, **SPECS["cap-local"])
    single = plan_single(spec, data, key, tmp_path)
    assert single.counts["rows"] >= 30 and single.counts["invalid"] >= 1
    for chunk_bytes in (1, 13, 40):
        assert_same(single, plan_chunked(spec, data, key, tmp_path, chunk_bytes))


def test_a_chunk_s_bucket_files_are_the_planner_s(tmp_path: Path) -> None:
    """One chunk over the whole list writes the Planner's very bucket files (same bucket, same
    line); the chunk keeps only the non-empty ones and its result stays small."""
    kept: dict[int, bytes] = {}

    class Recording(cp.Planner):
        def _plan_bucket(self, i: int, writers: Any, suppressed: Any) -> None:
            if os.path.getsize(self._bucket_path(i)):
                kept[i] = Path(self._bucket_path(i)).read_bytes()
            super()._plan_bucket(i, writers, suppressed)

    rng = random.Random(5)
    data = csv_list(rng, 3000, False, True)
    spec = make_spec("r.csv", **SPECS["stages"])
    Recording(spec, str(tmp_path)).plan(cp.iter_rows(io.BytesIO(data), "r.csv"), lambda a: set())
    result = ch.plan_chunk(spec, ch.ChunkRows(opener(data), "r.csv", 0, len(data)), str(tmp_path))
    assert result.buckets == sorted(kept) and len(kept) >= 250
    assert {i: Path(result.dir, ch.bucket_file(i)).read_bytes() for i in result.buckets} == kept
    assert sorted(os.listdir(result.dir)) == sorted(result.files())  # nothing else is left to upload
    assert len(json.dumps(result.as_dict())) < 2048


def test_chunk_zero_previews_the_list_s_first_valid_rows_with_the_planner_s_message(tmp_path: Path) -> None:
    data = b"email,first\nbad\na@x.org,A\nb@x.org,B\nc@x.org,C\nd@x.org,D\ne@x.org,E\nf@x.org,F\nboom@x.org,Z\n"
    spec = make_spec("r.csv", stages=[100])
    seen: list[dict[str, Any]] = []
    ranges = [(0, 60), (60, len(data))]  # chunk 0 holds the first 5 valid rows (A-E, E at byte 55)
    header = ch.read_header(opener(data), "r.csv")
    for start, end in ranges:  # every chunk is given the preview; chunk 0 alone uses it
        ch.plan_chunk(spec, ch.ChunkRows(opener(data), "r.csv", start, end, header), str(tmp_path), seen.append)
    single: list[dict[str, Any]] = []
    cp.Planner(spec, str(tmp_path), single.append).plan(cp.iter_rows(io.BytesIO(data), "r.csv"), lambda a: set())
    assert seen == single and [d["first"] for d in seen] == ["A", "B", "C", "D", "E"]

    def failing(d: dict[str, Any]) -> None:
        if d["first"] == "C":
            raise KeyError("no such variable")

    failed = tmp_path / "failed"
    failed.mkdir()
    with pytest.raises(KeyError) as planner_error:
        cp.Planner(spec, str(failed), failing).plan(cp.iter_rows(io.BytesIO(data), "r.csv"), lambda a: set())
    with pytest.raises(KeyError) as chunk_error:
        ch.plan_chunk(spec, ch.ChunkRows(opener(data), "r.csv", *ranges[0]), str(failed), failing)
    assert str(chunk_error.value) == str(planner_error.value) and "(row 5)" in str(chunk_error.value)
    assert os.listdir(failed) == []  # both removed what they wrote


def test_merge_refuses_chunks_that_do_not_cover_the_list_in_order(tmp_path: Path) -> None:
    data = b"email\n" + b"".join(f"u{i}@example.org\n".encode() for i in range(50))
    spec = make_spec("r.csv", stages=[100])
    header = ch.read_header(opener(data), "r.csv")
    results = [
        ch.plan_chunk(spec, ch.ChunkRows(opener(data), "r.csv", s, e, header), str(tmp_path))
        for s, e in ch.split(len(data), 300)
    ]
    assert len(results) == 3
    for wrong in ([], results[::-1], results[:1] + results[2:], results[1:]):
        with pytest.raises(ValueError, match="chunk"):
            ch.merge(spec, wrong, ch.local_files(wrong), lambda a: set(), str(tmp_path))
    merged = ch.merge(spec, results, ch.local_files(results), lambda a: set(), str(tmp_path))
    assert merged.counts.planned == [50] and merged.counts.rows == 50
    assert sum(len(b["recipients"]) for b in json.loads(Path(merged.manifests[0]).read_text())) == 50
