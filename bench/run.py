"""`make bench`: every figure of the benchmark suite, side by side with its baseline, in one run.

    python -m bench.run [--quick] [--kafka HOST:PORT] [--redis-url URL] [--out bench/results.json]

Absolute numbers on a shared 2-core machine are noise; the ratios measured
in the same run (pipeline/ceiling, pipeline/baseline, recount/bare scan) are
the result. --quick shrinks every size so CI can run it in a couple of minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from bench import (
    capacity,
    cluster_bench,
    creation_bench,
    estimate_latency,
    export_bench,
    memory_bench,
    rebuild_bench,
    recount_bench,
    rules_bench,
)
from bench.pipeline import pipeline_and_latency
from stream.generate import Workload

SIZES = {
    "quick": {"users": 2000, "events": 20_000, "latency_s": 8, "estimate": 100_000, "recount": 50_000,
              "export": 50_000, "rebuild": 3000, "rule_events": 4000, "heavy": 5000,
              "creation_users": 2000, "creation_events": 20_000, "memory_users": 5000},
    "full": {"users": 50_000, "events": 500_000, "latency_s": 30, "estimate": 1_000_000, "recount": 1_000_000,
             "export": 1_000_000, "rebuild": 200_000, "rule_events": 20_000, "heavy": 100_000,
             "creation_users": 100_000, "creation_events": 1_000_000, "memory_users": 1_000_000},
}
CREATION_COUNTS = {"quick": [1, 10], "full": [1, 10, 50]}  # segments of each kind created together


async def run(kafka: str, redis_url: str, quick: bool) -> dict[str, Any]:
    size = SIZES["quick" if quick else "full"]
    started = time.time()
    pipe = await pipeline_and_latency(kafka, redis_url, Workload(seed=9, users=size["users"], events=size["events"]),
                                      partitions=8, latency_seconds=size["latency_s"])
    # One event per user on average (Zipf-skewed), so a million users take ~4 min with two workers.
    mem = await memory_bench.run(kafka, redis_url, size["memory_users"], size["memory_users"])
    clu = await cluster_bench.run(kafka, Workload(seed=9, users=size["users"], events=size["events"]), partitions=8)
    est = await estimate_latency.run(redis_url, size["estimate"], calls=300 if quick else 1000)
    rec = await recount_bench.run(redis_url, size["recount"])
    exp = await export_bench.run(redis_url, kafka, size["export"])
    reb = await rebuild_bench.run(kafka, redis_url, size["rebuild"])
    rules = await rules_bench.run(redis_url, size["rule_events"], size["heavy"])
    # The 1M-user / 10M-event run takes ~40 min more: `python -m bench.creation_bench --history log
    # --users 1000000 --events 10000000` (docs/SCALING.md has its figures).
    creation = await creation_bench.run(kafka, redis_url, size["creation_users"], size["creation_events"],
                                        CREATION_COUNTS["quick" if quick else "full"], mode="log")
    return {
        "mode": "quick" if quick else "full",
        "started_at": started,
        "sizes": size,
        "pipeline": pipe,
        "memory": mem,
        "cluster": clu,
        "estimate": est,
        "recount": rec,
        "export": exp,
        "rebuild": reb,
        "rules": rules,
        "creation": creation,
        # The flat keys the performance issue tracks (the nested figures above are the same runs).
        "pipeline_msgs_per_s": pipe["pipeline"],
        "pipeline_over_baseline": pipe["pipeline"] / pipe["baseline"],
        "faust_floor_msgs_per_s": pipe["faust_floor"],
        "pipeline_over_faust_floor": pipe["pipeline"] / pipe["faust_floor"],
        "faust_stream_floor_msgs_per_s": pipe["faust_stream_floor"],
        "two_workers_over_one": pipe["pipeline_two_workers"] / pipe["pipeline_known_users"],
        "cluster_two_workers_over_one": clu["two_workers_over_one"],
        "cluster_over_single_known_users": clu["known_users"] / pipe["pipeline_known_users"],
        "cluster_redis_bytes_per_user": clu["redis_bytes_per_user"],
        "latency_p99_s": pipe["latency_p99"],
        "estimate_p99_ms": est["p99_ms"],
        "recount_over_scan": rec["recount_over_scan"],
        "export_rows_per_s": exp["rows_per_s"],
        "redis_bytes_per_user": mem["redis_bytes_per_user"],
        "redis_bytes_per_user_pipeline": pipe["redis_bytes_per_user"],
        "rebuild_users_per_s": reb["users_per_s"],
        "heavy_user_cost_ratio": rules["heavy"]["heavy_user_cost_ratio"],
        "heavy_user_cold_ratio": rules["heavy"]["heavy_user_cold_ratio"],
        "api_insights_p99_ms_under_load": pipe["api_under_load"]["api_insights_p99_ms_under_load"],
        "creation_ready_s": {str(n): creation[f"ready_s_{n}"] for n in creation["counts"]},
        "per_event": pipe["per_event"],
        "ratios": {
            "pipeline_over_ceiling": pipe["pipeline"] / pipe["ceiling"],
            "pipeline_over_baseline": pipe["pipeline"] / pipe["baseline"],
            "recount_over_bare_scan": rec["recount_over_scan"],
            "changelog_on_over_off": pipe["pipeline_known_users"] / pipe["pipeline_no_changelog"],
        },
    }


def table(r: dict[str, Any]) -> str:
    p, e, rc, x, q, rb = r["pipeline"], r["estimate"], r["recount"], r["export"], r["ratios"], r["rebuild"]
    rows = [
        ("1 ceiling: raw aiokafka consume", f"{p['ceiling']:,.0f} msg/s", ""),
        ("2 pipeline: 20 live segments", f"{p['pipeline']:,.0f} msg/s",
         f"{q['pipeline_over_ceiling']:.1%} of ceiling (target >= 15,000 msg/s)"),
        ("  latency at half load", f"p50 {p['latency_p50'] * 1000:,.0f} ms, p99 {p['latency_p99'] * 1000:,.0f} ms",
         f"at {p['latency_rate']:,.0f} msg/s (target p99 <= 250 ms)"),
        ("  query API under half load, 50 clients",
         f"p99 {p['api_under_load']['api_insights_p99_ms_under_load']:,.1f} ms, "
         f"p50 {p['api_under_load']['p50_ms']:,.1f} ms",
         f"{p['api_under_load']['requests_per_s']:,.0f} req/s on insights, trend, users "
         f"({p['api_under_load']['errors']} errors; target p99 <= 20 ms)"),
        ("  known users only (no first touch)", f"{p['pipeline_known_users']:,.0f} msg/s",
         f"{p['pipeline_known_users'] / p['baseline']:.2f}x the baseline"),
        ("  two workers (scale-out, 2 cores)", f"{p['pipeline_two_workers']:,.0f} msg/s",
         f"{p['pipeline_two_workers'] / p['pipeline_known_users']:.2f}x one worker (target >= 1.7x)"),
        ("  changelog off (durability cost)", f"{p['pipeline_no_changelog']:,.0f} msg/s",
         f"changelog on is {p['pipeline_known_users'] / p['pipeline_no_changelog']:.2f}x of off; "
         f"{p['changelog_bytes_per_input']:,.0f} Kafka B and {p['changelog_records_per_input']:.2f} records per input"),
        ("  Faust floor: same intake, no work", f"{p['faust_floor']:,.0f} msg/s",
         f"pipeline is {p['pipeline'] / p['faust_floor']:.1%} of it (target >= 50%)"),
        ("  Faust's per-message agent, no work", f"{p['faust_stream_floor']:,.0f} msg/s",
         f"the intake floor is {p['faust_floor'] / p['faust_stream_floor']:.1f}x it; pipeline is "
         f"{p['pipeline'] / p['faust_stream_floor']:.1%} of it"),
        ("3 baseline: naive per-event agent", f"{p['baseline']:,.0f} msg/s",
         f"pipeline is {q['pipeline_over_baseline']:.2f}x (target >= 4x)"),
        (f"4 estimate, {e['members']:,} members", f"p50 {e['p50_ms']:.2f} ms, p99 {e['p99_ms']:.2f} ms",
         "target p99 <= 1 ms"),
        (f"5 exact recount, {rc['users']:,} users", f"{rc['recount_s']:.1f} s vs bare scan {rc['bare_scan_s']:.1f} s",
         f"{q['recount_over_bare_scan']:.2f}x the scan (target <= 2x)"),
        ("  same keys, redis-py pipelined HGETALL", f"{rc['redis_py_scan_s']:.1f} s",
         f"recount is {rc['recount_over_redis_py_scan']:.2f}x this conventional read"),
        (f"6 CSV export, {x['rows']:,.0f} rows", f"{x['rows_per_s']:,.0f} rows/s",
         f"API RSS {x['rss_start_mb']:.0f} -> {x['rss_peak_mb']:.0f} MB (target >= 150,000 rows/s, flat)"),
        ("7 Redis memory per user, 20 segments", f"{r['memory']['redis_bytes_per_user']:,.0f} B",
         f"at {r['memory']['users']:,} users, {r['memory']['events']:,} events (target <= 1,024 B)"),
        ("  same, pipeline phase", f"{p['redis_bytes_per_user']:,.0f} B",
         f"at {r['sizes']['users']:,} users, {r['sizes']['events']:,} events"),
        (f"8 stream rebuild, {rb['users']:,} users", f"{rb['rebuild_s']:.1f} s ({rb['users_per_s']:,.0f} users/s)",
         f"{rb['memberships']:,} memberships back exactly"),
    ]
    c = r["cluster"]
    rows += [
        ("9 Redis Cluster (3 masters + 3 replicas)", f"{c['first_touch']:,.0f} msg/s",
         f"first touch, 20 live segments; single Redis {p['pipeline']:,.0f} msg/s"),
        ("  cluster, known users, 1 worker", f"{c['known_users']:,.0f} msg/s",
         f"{c['known_users'] / p['pipeline_known_users']:.2f}x the single Redis's {p['pipeline_known_users']:,.0f}"),
        ("  cluster, known users, 2 workers", f"{c['two_workers']:,.0f} msg/s",
         f"{c['two_workers_over_one']:.2f}x one worker (single Redis: "
         f"{p['pipeline_two_workers'] / p['pipeline_known_users']:.2f}x)"),
        ("  cluster, Redis memory per user", f"{c['redis_bytes_per_user']:,.0f} B on masters",
         f"+{c['replica_bytes_per_user']:,.0f} B on replicas; single Redis {p['redis_bytes_per_user']:,.0f} B"),
    ]
    h = r["rules"]["heavy"]
    rows.append((f"10 heavy user: {h['heavy_events_in_window']:,} events in a windowed sum",
                 f"{h['heavy_us_per_event']:,.0f} us/event vs light {h['light_us_per_event']:,.0f}",
                 f"{h['heavy_user_cost_ratio']:.1f}x a light user (target <= 3x); "
                 f"state {h['heavy_state_bytes']:,} B in {h['heavy_blocks']} blocks, "
                 f"{h['heavy_rewritten_bytes']:,} B rewritten per touch"))
    rows.append(("  heavy user, cache miss on every touch", f"{h['heavy_cold_us_per_event']:,.0f} us/event vs light "
                 f"{h['light_cold_us_per_event']:,.0f}", f"{h['heavy_user_cold_ratio']:.1f}x (reads the whole hash)"))
    for label, us in r["rules"]["us_per_event"].items():
        rows.append((f"  rule kind: {label}", f"{us:,.0f} us/event",
                     f"{r['rules']['over_no_segment'][label]:.2f}x no segment (in-process engine, real Redis)"))
    cr = r["creation"]
    for n in cr["counts"]:
        label = f"{n} past_behavior + {n} live" if n > 1 else "1 past_behavior + 1 live"
        rows.append((f"11 creation to ready: {label}" if n == cr["counts"][0] else f"   {label}",
                     f"{cr[f'ready_s_{n}']:,.1f} s",
                     f"{cr['users']:,} users, {cr['events']:,} events in the log; a recount asked meanwhile took "
                     f"{cr[f'recount_s_{n}']:,.1f} s (alone {cr['recount_alone_s']:,.1f} s)"))
    width = max(len(a) for a, _, _ in rows)
    out = [f"bench ({r['mode']})"]
    out += [f"  {a:<{width}}  {b:<32}  {c}" for a, b, c in rows]
    for users, families in ((r["memory"]["users"], r["memory"]["by_family"]),
                            (r["sizes"]["users"], p.get("redis_by_family", {}))):
        out.append(f"  Redis memory by key family, bytes per user at {users:,} users "
                   "(sk: samples and seg: keys are per segment; samples stop growing at 2K entries):")
        out.append("    " + ", ".join(f"{name} {size / users:,.0f}" for name, size in list(families.items())[:10]))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--kafka", default=os.environ.get("STREAM_TEST_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("--redis-url", default=os.environ.get("STREAM_TEST_REDIS_URL", "redis://127.0.0.1:6380/0"))
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = parser.parse_args()
    result = asyncio.run(run(args.kafka, args.redis_url, args.quick))
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(table(result))
    print("capacity model (bench/capacity.py, docs/SCALING.md):")
    print(capacity.table(capacity.Costs.from_results(result)))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
