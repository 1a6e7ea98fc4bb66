"""Campaign planning: parsing, validation, dedupe, stable staging, manifests, gates."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sesflow_core import campaign as cp
from sesflow_core.errors import InvalidCampaign


def spec(**kw: object) -> cp.CampaignSpec:
    raw = {"campaignId": "c1", "template": "newsletter", "recipients": {"bucket": "b", "key": "r.csv"}, **kw}
    return cp.CampaignSpec.from_input(raw)


def plan(text: str, key: str = "r.csv", suppressed: set[str] | None = None, **kw: object):  # type: ignore[no-untyped-def]
    s = spec(**kw)
    planner = cp.Planner(s)
    manifests, rejects = planner.plan(
        cp.iter_rows(io.BytesIO(text.encode()), key), lambda addrs: {a for a in addrs if a in (suppressed or set())}
    )
    items = [json.loads(Path(m).read_text()) for m in manifests]
    return planner.counts, items, Path(rejects).read_text()


def test_csv_counts_dedupe_invalid_and_suppressed() -> None:
    rows = ["email,name,plan"] + [f"user{i}@example.org,U{i},pro" for i in range(200)]
    rows += [
        "USER1@Example.org,dup,x",
        "user2@example.org,dup,x",
        "not-an-address,x,x",
        ",empty,x",
        "a@example.org\r,crlf,x",
    ]
    counts, items, rejects = plan("\n".join(rows), suppressed={"user3@example.org", "user4@example.org"})
    assert counts.rows == 206  # a bare CR ends a CSV record: "a@example.org" and ",crlf,x"
    assert counts.invalid == 3  # not-an-address, empty, and the CR's orphaned ",crlf,x"
    assert counts.duplicates == 2
    assert counts.suppressed == 2
    assert counts.valid == 201
    assert sum(counts.planned) == 199  # 201 unique valid - 2 suppressed
    recipients = [r for stage in items for batch in stage for r in batch["recipients"]]
    assert len(recipients) == 199 == len({r["to"].lower() for r in recipients})
    assert "user3@example.org" not in {r["to"] for r in recipients}
    assert rejects.splitlines()[0] == "row,reason" and "not a valid address" in rejects


def test_batches_are_at_most_batch_size_and_carry_row_data() -> None:
    text = "email,first\n" + "\n".join(f"u{i}@example.org,F{i}" for i in range(130))
    counts, items, _ = plan(text, stages=[100], batchSize=50)
    [stage] = items
    assert [len(b["recipients"]) for b in stage] == [50, 50, 30]
    assert counts.batches == [3]
    assert stage[0]["recipients"][0]["data"]["first"].startswith("F")
    assert {b["campaignId"] for b in stage} == {"c1"} and [b["batch"] for b in stage] == [0, 1, 2]


def test_jsonl_rows() -> None:
    text = '{"email": "a@example.org", "data": {"x": 1}}\n\nnot json\n{"email": "b@example.org", "name": "B"}\n[1]\n'
    counts, items, rejects = plan(text, key="r.jsonl", stages=[100])
    assert (counts.valid, counts.invalid) == (2, 2)
    assert "not valid JSON" in rejects and "not a JSON object" in rejects
    assert items[0][0]["recipients"][0]["data"] in ({"x": 1}, {})


def test_csv_without_email_column_is_refused() -> None:
    with pytest.raises(InvalidCampaign, match="'email' column"):
        plan("name\nx")


def test_stages_are_a_stable_random_sample() -> None:
    stages = (1.0, 10.0, 100.0)
    addrs = [f"user{i}@example.org" for i in range(20000)]
    assigned = [cp.stage_for("camp", a, stages) for a in addrs]
    assert assigned == [cp.stage_for("camp", a, stages) for a in addrs]  # stable
    share = [assigned.count(i) / len(addrs) for i in range(3)]
    assert 0.007 < share[0] < 0.013 and 0.08 < share[1] < 0.10
    assert assigned[:200].count(0) < 10  # the canary is not the first rows
    assert [cp.stage_for("other", a, stages) for a in addrs[:500]] != assigned[:500]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"campaignId": "bad id"}, "campaignId"),
        ({"stages": [10, 5, 100]}, "stages"),
        ({"stages": [10, 50]}, "stages"),
        ({"batchSize": 251}, "batchSize"),
        ({"approval": "maybe"}, "approval"),
        ({"recipients": {}}, "recipients"),
    ],
)
def test_bad_campaign_input(raw: dict[str, object], reason: str) -> None:
    base = {"campaignId": "c1", "template": "newsletter", "recipients": {"bucket": "b", "key": "r.csv"}}
    with pytest.raises(InvalidCampaign, match=reason):
        cp.CampaignSpec.from_input({**base, **raw})


def test_gate() -> None:
    g = cp.GateSettings(max_bounce_rate=0.05, max_complaint_rate=0.001, min_sample=20)
    assert cp.gate({"accepted": 10, "bounced": 5}, g).action == "continue"  # below minSample
    assert cp.gate({"accepted": 100, "bounced": 6}, g).action == "halt"
    assert cp.gate({"accepted": 100, "bounced": 5}, g).action == "continue"
    assert cp.gate({"accepted": 2000, "complained": 3}, g).action == "halt"
    manual = cp.GateSettings(approval="manual")
    assert cp.gate({"accepted": 100}, manual).action == "approve"


def test_the_gate_halts_on_failures_and_says_when_its_sample_is_too_small() -> None:
    g = cp.GateSettings(max_failure_rate=0.05, min_sample=20)
    halted = cp.gate({"accepted": 90, "failed": 10}, g)
    assert halted.action == "halt" and halted.reason == "failure rate 10.00% > 5.00%"
    assert cp.gate({"accepted": 96, "failed": 4}, g).action == "continue"
    small = cp.gate({"accepted": 3, "bounced": 3}, g)
    assert small.action == "continue" and small.insufficient_sample
    assert small.reason == "insufficient sample: 3 sent < minSample 20, rates not judged"


def test_recipients_must_come_from_the_campaigns_bucket() -> None:
    raw = {"campaignId": "c1", "template": "newsletter", "recipients": {"bucket": "someone-elses", "key": "r.csv"}}
    with pytest.raises(InvalidCampaign, match="is not one this stack may read"):
        cp.CampaignSpec.from_input(raw, default_bucket="campaigns-bucket")
    ok = cp.CampaignSpec.from_input({**raw, "recipients": {"key": "r.csv"}}, default_bucket="campaigns-bucket")
    assert ok.recipients_bucket == "campaigns-bucket"


def test_concurrency_keeps_the_campaign_under_the_rate() -> None:
    """As few workers as keep up (48/s each: 4 senders of 12/s), paced under the rate."""
    workers, pace = cp.concurrency_for(20)
    assert workers == 1 and workers * pace <= 20 * 0.99 + 1e-9 and cp.sender_threads(pace) == 2
    workers, pace = cp.concurrency_for(200)
    assert workers == 5 and workers * pace <= 200 * 0.99 + 1e-9 and cp.sender_threads(pace) == 4
    workers, pace = cp.concurrency_for(14)
    assert workers == 1 and workers * pace <= 14 and cp.sender_threads(pace) == 2
    assert cp.concurrency_for(100000)[0] == 40
    assert cp.sender_threads(0) == 1  # not paced (tests): one sender


def test_batch_size_is_what_a_worker_sends_in_40_seconds() -> None:
    assert cp.batch_size_for(0.5) == 20
    assert cp.batch_size_for(6.65) == 266 - 16  # capped at 250
    assert cp.batch_size_for(0.01) == 1


def test_a_paced_worker_with_several_senders_keeps_its_rate() -> None:
    """Four threads share one pacer: 40 slots at 200/s take >= 0.195 s, never a burst."""
    import threading
    import time

    pacer = cp.Pacer(200)
    stamps: list[float] = []
    lock = threading.Lock()

    def sender() -> None:
        for _ in range(10):
            pacer.wait()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    assert len(stamps) == 40 and stamps[-1] - stamps[0] >= 39 / 200 - 0.01


def test_wide_rows_are_batched_by_bytes_so_a_child_input_fits_256_kib() -> None:
    """40 columns of 88 bytes: 50 such rows would make a 200 KB batch; with the campaign's
    32 KiB of data the child's input would pass Step Functions' 256 KiB."""
    header = "email," + ",".join(f"col{i:02d}" for i in range(40))
    rows = [header] + [f"wide{i}@example.org," + ",".join(f"{i:04d}" + "v" * 84 for _ in range(40)) for i in range(300)]
    counts, items, _ = plan("\n".join(rows), stages=[100])
    assert counts.invalid == 0 and sum(counts.planned) == 300
    batches = items[0]
    sizes = [len(json.dumps(b, separators=(",", ":")).encode()) for b in batches]
    assert max(sizes) <= cp.MAX_BATCH_BYTES
    assert max(len(b["recipients"]) for b in batches) < cp.MAX_BATCH_SIZE  # bytes decided, not the count
    assert sum(len(b["recipients"]) for b in batches) == 300
    worst_child_input = max(sizes) + 32 * 1024 + 1024  # + campaign data + template/topic/rate
    assert worst_child_input < 256 * 1024


def test_a_daily_cap_cuts_each_stage_into_parts_of_about_a_day_s_worth() -> None:
    """With dailyCap, a stage's manifest is cut into parts (whole batches, a part closed once it
    holds the cap): a pass that the cap stops is sent again from its part, not the whole stage."""
    s = spec(stages=[100], dailyCap=120, batchSize=50)
    planner = cp.Planner(s)
    rows = "\n".join(["email"] + [f"user{i}@example.org" for i in range(330)])
    manifests, _ = planner.plan(cp.iter_rows(io.BytesIO(rows.encode()), "r.csv"), lambda a: set())
    [parts] = planner.parts
    assert [Path(p).name for p, _, _, _ in parts] == ["stage-0.json", "stage-0-part-1.json", "stage-0-part-2.json"]
    assert [(n, b) for _, n, b, _ in parts] == [(150, 3), (150, 3), (30, 1)]  # closed at >= 120 recipients
    batches = [json.loads(Path(p).read_text()) for p, _, _, _ in parts]
    assert [len(b) for b in batches] == [3, 3, 1] and manifests[0] == parts[0][0]
    # batch numbers run on across parts (a batch's ledger owner stays unique in the stage)
    assert [b["batch"] for part in batches for b in part] == list(range(7))
    assert sum(len(b["recipients"]) for part in batches for b in part) == 330
    assert cp.part_key("campaigns/c1/stage-0.json", 0) == "campaigns/c1/stage-0.json"
    assert cp.part_key("campaigns/c1/stage-0.json", 2) == "campaigns/c1/stage-0-part-2.json"


def test_without_a_cap_a_stage_is_one_part() -> None:
    planner = cp.Planner(spec(stages=[100], batchSize=50))
    rows = "\n".join(["email"] + [f"user{i}@example.org" for i in range(330)])
    planner.plan(cp.iter_rows(io.BytesIO(rows.encode()), "r.csv"), lambda a: set())
    assert [(n, b) for _, n, b, _ in planner.parts[0]] == [(330, 7)]


def test_local_time_plans_one_part_per_utc_offset_east_to_west_and_rejects_unknown_zones() -> None:
    s = spec(stages=[100], localTime="09:30", timezone="Europe/Berlin", startAt=None)
    planner = cp.Planner(s)
    rows = ["email,timezone"]
    rows += [f"tokyo{i}@example.org,Asia/Tokyo" for i in range(3)]
    rows += [f"ny{i}@example.org,America/New_York" for i in range(2)]
    rows += [f"lima{i}@example.org,America/Lima" for i in range(2)]  # -05:00 too (in winter): one slot
    rows += ["nozone@example.org,", "mars@example.org,Mars/Olympus_Mons"]
    _, rejects = planner.plan(cp.iter_rows(io.BytesIO("\n".join(rows).encode()), "r.csv"), lambda a: set())
    [parts] = planner.parts
    offsets = [p[3] for p in parts]
    assert offsets == sorted(offsets, reverse=True)  # east first
    by_offset = {p[3]: p[1] for p in parts}
    assert by_offset[9 * 60] == 3 and by_offset[-5 * 60] == 4  # New York and Lima share a slot in winter
    assert by_offset[60] == 1 or by_offset[120] == 1  # no zone: the campaign's (Berlin)
    items = [b for p in parts for b in json.loads(Path(p[0]).read_text())]
    assert all(b["slot"] in offsets for b in items)
    assert sorted(b["batch"] for b in items) == list(range(len(items)))
    assert "timezone" not in items[0]["recipients"][0]["data"]
    text = Path(rejects).read_text()
    assert "Mars/Olympus_Mons" in text and "not a known IANA time zone" in text
    assert planner.counts.invalid == 1


def test_local_time_must_lie_inside_the_window() -> None:
    with pytest.raises(InvalidCampaign, match="outside the window"):
        spec(localTime="08:00", window={"from": "09:00", "to": "17:00"})
    with pytest.raises(InvalidCampaign, match="localTime must be a local time"):
        spec(localTime="9:30am")


def test_a_locale_column_goes_with_the_recipient_and_a_malformed_one_is_rejected() -> None:
    rows = "\n".join(
        ["email,locale,plan", "a@example.org,pt_BR,pro", "b@example.org,,free", "c@example.org,klingon!,x"]
    )
    counts, items, rejects = plan(rows, stages=[100])
    recipients = {r["to"]: r for b in items[0] for r in b["recipients"]}
    assert recipients["a@example.org"]["locale"] == "pt-BR" and "locale" not in recipients["a@example.org"]["data"]
    assert "locale" not in recipients["b@example.org"]
    assert counts.invalid == 1 and "language tag" in rejects


@pytest.mark.parametrize(
    "text",
    [
        "email,name\na@b.org,A\n\nc@d.org\ne@f.org,E,extra,more\n",
        " email , Name ,email\nx@y.org,X,z@w.org\n",
        'email,data\n"a@b.org","x,""y"""\n\n\n',
        "email\r\na@b.org\r\n",
        "\ufeffEmail;x\na@b.org\n",
    ],
)
def test_csv_rows_are_what_dict_reader_gave(text: str) -> None:
    """iter_rows reads with csv.reader (faster); rows, numbers and padding stay DictReader's."""
    import csv

    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    expected = [
        (n, {(k or "").strip(): v for k, v in row.items() if k is not None}) for n, row in enumerate(reader, start=2)
    ]
    if "email" not in [f.strip().lower() for f in reader.fieldnames or []]:
        with pytest.raises(InvalidCampaign):
            list(cp.iter_rows(io.BytesIO(text.encode()), "r.csv"))
        return
    assert list(cp.iter_rows(io.BytesIO(text.encode()), "r.csv")) == expected
