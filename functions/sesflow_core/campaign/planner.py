"""Planning: stream the list, validate, de-duplicate with bounded memory, drop suppressed
recipients, assign stages by a stable hash, and write one manifest of batches per stage.

* :func:`iter_rows` streams a CSV (header with an ``email`` column) or JSONL file;
* :func:`stage_for` assigns a recipient to a stage by a stable hash of campaign + address,
  so the canary is a random sample (not the first rows) and re-planning gives the same answer;
* :class:`Planner` spreads rows over hash buckets on disk, de-duplicates each bucket on its
  own, and streams batches (cut by count and by bytes) to one manifest file per stage.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

from .. import ids
from ..errors import InvalidCampaign, InvalidEmailRequest
from ..request import MAX_DATA_BYTES, parse_address, parse_locale
from . import schedule
from .spec import MAX_BATCH_SIZE, CampaignSpec

MAX_ROW_DATA_BYTES = 4 * 1024
#: one batch item of a manifest, as JSON: with the campaign's data (<= 32 KiB) that the Map adds,
#: a child execution's input stays under Step Functions' 256 KiB (50 rows of 4 KiB would not)
MAX_BATCH_BYTES = 192 * 1024
BUCKETS = 256
SUPPRESSION_LOOKUP = 99  # addresses per suppression lookup: 3 keys each fit 3 BatchGetItem calls


def bucket_file(i: int) -> str:
    """The name of bucket ``i``'s file (the Planner's, and a distributed plan chunk's)."""
    return f"bucket-{i:03d}.jsonl"


def stage_for(campaign_id: str, address: str, stages: tuple[float, ...]) -> int:
    """The stage of ``address``: a stable, uniform draw in [0, 100) against cumulative stages."""
    digest = hashlib.sha256(f"{campaign_id}\x00{address}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64 * 100
    for i, upper in enumerate(stages):
        if u < upper:
            return i
    return len(stages) - 1


def variant_for(campaign_id: str, address: str, variants: int) -> int:
    """The A/B variant (index) of a sample recipient: a stable, uniform draw of its own (not
    the stage's: the stage hash decided the recipient is in the sample)."""
    digest = hashlib.sha256(f"{campaign_id}\x01variant\x00{address}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % variants


def email_id_for(campaign_id: str, address: str) -> str:
    """The emailId of one campaign recipient: the per-(campaign, recipient) ledger key."""
    return ids.campaign_email_id(campaign_id, address)


# ---------------------------------------------------------------- rows
def iter_rows(stream: IO[bytes], key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, row) from a CSV with a header, or JSONL (by extension; CSV default)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    if key.lower().endswith((".jsonl", ".ndjson", ".json")):
        for n, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                yield n, {"__error__": "not valid JSON"}
                continue
            yield n, row if isinstance(row, dict) else {"__error__": "not a JSON object"}
        return
    # csv.reader + zip over the stripped header, as csv.DictReader would give them (blank lines
    # skipped, short rows padded with None, extra fields dropped) without a second dict per row
    reader = csv.reader(text)
    header = next(reader, None)
    names = [f.strip() for f in header or []]
    if "email" not in [f.lower() for f in names]:
        raise InvalidCampaign("the CSV header must contain an 'email' column")
    n = 1
    for values in reader:
        if not values:
            continue
        n += 1
        record: dict[str, Any] = dict(zip(names, values, strict=False))
        if len(values) < len(names):
            for k in names[len(values) :]:
                record[k] = None
        yield n, record


@dataclass
class Recipient:
    to: str
    address: str
    data: dict[str, Any]
    name: str | None = None
    zone: str | None = None  # the ``timezone`` column (IANA), for ``localTime`` campaigns
    locale: str | None = None  # the ``locale`` column: the template variant (fallback, never an error)
    data_bound: int = 1 << 62  # an upper bound of ``data``'s JSON size (``_json_bound``)


def _json_bound(data: dict[str, Any]) -> int:
    """An upper bound of ``data``'s JSON size, in characters or UTF-8 bytes, without encoding it
    (the planner's hottest line was a ``json.dumps`` per row only to measure it): a code point
    takes at most 12 (a non-BMP one as two ``\\uXXXX``), each pair 6 more (quotes, colon, comma).
    Values that are not strings (JSONL) have no cheap bound: the caller encodes."""
    total = 2
    for k, v in data.items():
        if type(v) is not str or type(k) is not str:
            return 1 << 62
        total += 12 * (len(k) + len(v)) + 6
    return total


def parse_row(row: dict[str, Any]) -> Recipient:
    """One row -> a recipient; raises InvalidEmailRequest with the reason."""
    if "__error__" in row:
        raise InvalidEmailRequest(str(row["__error__"]))
    lowered = {str(k).lower(): v for k, v in row.items()}
    addr = parse_address(lowered.get("email"), "email")
    name = lowered.get("name") or lowered.get("toname")
    zone_name = lowered.get("timezone")
    if zone_name not in (None, ""):
        try:
            schedule.zone(zone_name, "timezone")
        except InvalidCampaign as exc:
            raise InvalidEmailRequest(str(exc)) from None
    nested = row.get("data")
    data: dict[str, Any] = (
        nested
        if isinstance(nested, dict)
        else {
            str(k): v for k, v in row.items() if str(k).lower() not in ("email", "name", "toname", "timezone", "locale")
        }
    )
    bound = _json_bound(data)
    if bound > MAX_ROW_DATA_BYTES and len(json.dumps(data, default=str)) > MAX_ROW_DATA_BYTES:
        raise InvalidEmailRequest(f"row data is larger than {MAX_ROW_DATA_BYTES} bytes")
    locale = parse_locale(lowered.get("locale"))
    return Recipient(addr.ascii, addr.normalized, data, str(name) if name else None, zone_name or None, locale, bound)


# ---------------------------------------------------------------- planner
@dataclass
class PlanCounts:
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    suppressed: int = 0
    planned: list[int] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Planner:
    """Bounded-memory planning: rows -> hash buckets on disk -> per-stage batch manifests.

    ``suppressed`` is called with up to 100 addresses at a time and returns those to drop.
    ``write_manifest(stage, path)`` and ``write_rejects(path)`` upload the files.
    """

    #: valid rows rendered at plan time (``preview``): a template that cannot render for this
    #: list fails the campaign before the first email, not recipient by recipient
    PREVIEW_ROWS = 5

    def __init__(
        self, spec: CampaignSpec, workdir: str | None = None, preview: Callable[[dict[str, Any]], Any] | None = None
    ) -> None:
        self.spec = spec
        self.preview = preview
        self._previewed = 0
        self._spec_data_bytes = len(json.dumps(spec.data, separators=(",", ":"), ensure_ascii=False).encode())
        self.dir = tempfile.mkdtemp(prefix="plan-", dir=workdir)
        self.counts = PlanCounts(planned=[0] * len(spec.stages), batches=[0] * len(spec.stages))
        #: per stage, its parts [path, recipients, batches] (after :meth:`plan`)
        self.parts: list[list[list[Any]]] = []

    def _check_merged_data(self, r: Recipient) -> None:
        """A recipient's template data is the campaign's data with the row's on top: it must fit
        the send request's limit, or every send to this row would be refused."""
        if not r.data or self._spec_data_bytes + r.data_bound <= MAX_DATA_BYTES:
            return
        merged = len(
            json.dumps({**self.spec.data, **r.data}, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        )
        if merged > MAX_DATA_BYTES:
            raise InvalidEmailRequest(
                f"row data with the campaign's data is {merged} bytes; the limit is {MAX_DATA_BYTES}"
            )

    def _bucketed(self, n: int, row: dict[str, Any]) -> tuple[int, str]:
        """Row ``n`` as its hash bucket and its line in that bucket's file (the bucket loop
        reads it; the distributed plan's chunks write the same lines). ``InvalidEmailRequest``
        for a row that is rejected; the first valid rows are previewed."""
        r = parse_row(row)
        self._check_merged_data(r)
        if self.preview is not None and self._previewed < self.PREVIEW_ROWS:
            self._previewed += 1
            try:
                self.preview({**self.spec.data, **r.data})
            except Exception as exc:
                raise type(exc)(f"the template cannot render for this list (row {n}): {exc}") from None
        bucket = int.from_bytes(hashlib.blake2b(r.address.encode(), digest_size=2).digest(), "big") % BUCKETS
        return bucket, json.dumps([n, r.to, r.address, r.name, r.data, r.zone, r.locale]) + "\n"

    def _bucket_path(self, i: int) -> str:
        return os.path.join(self.dir, bucket_file(i))

    def plan(
        self, rows: Iterable[tuple[int, dict[str, Any]]], suppressed: Callable[[list[str]], set[str]]
    ) -> tuple[list[str], str]:
        """Returns (manifest path per stage, rejects CSV path). A plan that fails removes
        everything it wrote (up to the whole list, in a warm function's /tmp)."""
        try:
            return self._plan(rows, suppressed)
        except BaseException:
            self.cleanup()
            raise

    def cleanup(self) -> None:
        """Remove the working directory and whatever is left in it."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def _plan(
        self, rows: Iterable[tuple[int, dict[str, Any]]], suppressed: Callable[[list[str]], set[str]]
    ) -> tuple[list[str], str]:
        rejects_path = os.path.join(self.dir, "rejects.csv")
        buckets = [open(self._bucket_path(i), "w", encoding="utf-8") for i in range(BUCKETS)]
        with open(rejects_path, "w", newline="", encoding="utf-8") as rf:
            rejects = csv.writer(rf)
            rejects.writerow(["row", "reason"])
            for n, row in rows:
                self.counts.rows += 1
                try:
                    b, line = self._bucketed(n, row)
                except InvalidEmailRequest as exc:
                    self.counts.invalid += 1
                    rejects.writerow([n, str(exc)])
                    continue
                buckets[b].write(line)
        for f in buckets:
            f.close()
        writers = _Writers(self.dir, self.spec)
        self._pending: list[tuple[str, str | None, str, dict[str, Any], str | None, str | None]] = []
        for i in range(BUCKETS):
            self._plan_bucket(i, writers, suppressed)
        self._flush(self._pending, writers, suppressed)
        self.parts = writers.close()
        for i, parts in enumerate(self.parts):
            self.counts.batches[i] = sum(p[2] for p in parts)
        return [parts[0][0] for parts in self.parts], rejects_path

    def _plan_bucket(self, i: int, writers: _Writers, suppressed: Callable[[list[str]], set[str]]) -> None:
        seen: set[str] = set()
        pending = self._pending  # carried across buckets: full lookups of SUPPRESSION_LOOKUP addresses
        path = self._bucket_path(i)
        with open(path, encoding="utf-8") as f:
            for line in f:
                _, to, address, name, data, zone, locale = json.loads(line)
                if address in seen:
                    self.counts.duplicates += 1
                    continue
                seen.add(address)
                self.counts.valid += 1
                pending.append((to, name, address, data, zone, locale))
                if len(pending) >= SUPPRESSION_LOOKUP:
                    self._flush(pending, writers, suppressed)
        os.remove(path)

    def _flush(
        self,
        pending: list[tuple[str, str | None, str, dict[str, Any], str | None, str | None]],
        writers: _Writers,
        suppressed: Callable[[list[str]], set[str]],
    ) -> None:
        if not pending:
            return
        dropped = suppressed([p[2] for p in pending])
        for to, name, address, data, zone, locale in pending:
            if address in dropped:
                self.counts.suppressed += 1
                continue
            stage = stage_for(self.spec.campaign_id, address, self.spec.stages)
            self.counts.planned[stage] += 1
            entry = {"to": to, "toName": name, "data": data}
            if locale:
                entry["locale"] = locale
            if stage == 0 and self.spec.variants:  # the A/B sample
                entry["variant"] = self.spec.variants[
                    variant_for(self.spec.campaign_id, address, len(self.spec.variants))
                ].id
            writers.writer(stage, zone).add(entry)
        pending.clear()


def part_key(stage_key: str, part: int) -> str:
    """A stage's part ``part`` (0: the stage's own manifest): ``stage-1.json``, ``stage-1-part-2.json``."""
    base = stage_key.removesuffix(".json")
    return f"{base}.json" if part == 0 else f"{base}-part-{part}.json"


class _Writers:
    """The manifest writers of a plan: one per stage; with ``localTime``, one per (stage, send
    slot), a slot being the UTC offset of the recipients' zones (the row's ``timezone``, else
    the campaign's) when the campaign starts."""

    def __init__(self, workdir: str, spec: CampaignSpec) -> None:
        self.dir, self.spec = workdir, spec
        self.local = spec.schedule.local_time is not None
        self._writers: dict[tuple[int, int | None], _ManifestWriter] = {}
        self._batch_numbers = [itertools.count() for _ in spec.stages]
        self._offsets: dict[str, int] = {}
        start = spec.schedule.start_at or spec.clock.now()
        self._at = datetime.fromtimestamp(start, UTC)

    def offset(self, zone: str | None) -> int:
        name = zone or self.spec.schedule.timezone
        if name not in self._offsets:
            delta = self._at.astimezone(ZoneInfo(name)).utcoffset()
            self._offsets[name] = int(delta.total_seconds() // 60) if delta is not None else 0
        return self._offsets[name]

    def writer(self, stage: int, zone: str | None) -> _ManifestWriter:
        key = (stage, self.offset(zone) if self.local else None)
        if key not in self._writers:
            name = f"stage-{stage}.json" if key[1] is None else f"stage-{stage}-slot-{key[1]}.json"
            self._writers[key] = _ManifestWriter(
                os.path.join(self.dir, name), self.spec, stage, self._batch_numbers[stage], key[1]
            )
        return self._writers[key]

    def close(self) -> list[list[list[Any]]]:
        """Per stage, its parts [path, recipients, batches, slot offset], east to west (the
        order a day's local times come round); a stage nobody falls in has one empty part."""
        out: list[list[list[Any]]] = []
        for stage in range(len(self.spec.stages)):
            mine = sorted((w for (s, _), w in self._writers.items() if s == stage), key=lambda w: -(w.slot or 0)) or [
                self.writer(stage, None)
            ]
            parts: list[list[Any]] = []
            for w in mine:
                w.close()
                parts += [[path, n, b, w.slot] for path, n, b in w.parts]
            out.append(parts)
        return out


class _ManifestWriter:
    """Streams a JSON array of batch items (the Distributed Map's S3 ItemReader input)."""

    def __init__(
        self,
        path: str,
        spec: CampaignSpec,
        stage: int,
        numbers: Iterator[int] | None = None,
        slot: int | None = None,
    ) -> None:
        self.path = path
        self.spec = spec
        self.stage = stage
        self.slot = slot
        self._numbers = numbers if numbers is not None else itertools.count()
        self.batches = 0
        #: the stage's parts, in order: [path, recipients, batches]; more than one when the
        #: campaign has a daily cap (a part holds about a day's worth, ``part_key``)
        self.parts: list[list[Any]] = [[path, 0, 0]]
        self._part_limit = spec.schedule.daily_cap
        self._current: list[str] = []  # the batch's recipients, already JSON (encoded once)
        self._bytes = 0
        self._f = open(path, "w", encoding="utf-8")
        self._f.write("[")

    def add(self, recipient: dict[str, Any]) -> None:
        text = json.dumps(recipient, separators=(",", ":"))  # ASCII (ensure_ascii): chars = bytes
        size = len(text) + 1
        if self._current and self._bytes + size > MAX_BATCH_BYTES - 256:  # room for the batch's own keys
            self._write()
        self._current.append(text)
        self._bytes += size
        if len(self._current) == (self.spec.batch_size or MAX_BATCH_SIZE):
            self._write()

    def _write(self) -> None:
        part = self.parts[-1]
        if self._part_limit and part[1] >= self._part_limit:
            # a new part: a day's worth of a capped campaign is sent again (skipped past the
            # cap) from its own part, not from the whole stage
            self._f.write("]")
            self._f.close()
            path = part_key(self.path, len(self.parts))
            self.parts.append([path, 0, 0])
            part = self.parts[-1]
            self._f = open(path, "w", encoding="utf-8")
            self._f.write("[")
        part[1] += len(self._current)
        part[2] += 1
        head: dict[str, Any] = {
            "campaignId": self.spec.campaign_id,
            "stage": self.stage,
            "batch": next(self._numbers),  # unique in the stage, whichever part or slot
        }
        # json.dumps({**head, "recipients": [...], "slot": ...}) with the recipients as encoded in add()
        item = json.dumps(head, separators=(",", ":"))[:-1] + ',"recipients":[' + ",".join(self._current) + "]"
        if self.slot is not None:
            item += ',"slot":' + json.dumps(self.slot)
        self._f.write(("," if part[2] > 1 else "") + item + "}")
        self.batches += 1
        self._current = []
        self._bytes = 0

    def close(self) -> None:
        if self._current:
            self._write()
        self._f.write("]")
        self._f.close()
