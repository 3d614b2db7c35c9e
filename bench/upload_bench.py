"""Benchmark: stream a ~200 MB custom-list CSV into the API; rows/s and the API's peak RSS.

The upload promises it never holds the body, so this fills Redis with N known
users (pipelined, as `export_bench` does), runs the real API in a subprocess
(it needs Kafka: every added member is a `segment-changes` message, sent to a
throwaway topic), generates the CSV on the fly (each user once, interleaved
with unmatched rows and a quoted note column as padding) and streams it with
httpx, reading the API process's VmHWM from /proc before and after.

    .venv/bin/python -m bench.upload_bench --redis-url redis://127.0.0.1:6380/0 --kafka 127.0.0.1:9092 \
        --members 1000000 --size-mb 200

Writes only under a fresh ``bench:<random>:`` prefix and topic, deleting both afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.export_bench import SID, Api, drop, fill, parse, peak_rss_mb
from stream.state.keys import Keys

PIECE = 256 * 1024


async def csv_body(members: int, size_bytes: int, stats: dict[str, int]) -> AsyncIterator[bytes]:
    """Header, then rows until `size_bytes`: user u-i every `step` rows, unmatched ones between."""
    row_len = len(f'u-{members},"note, with ""quotes"" and padding {"x" * 40}"\r\n')
    step = max(1, size_bytes // row_len // max(1, members))
    buf = ["user_id,note\r\n"]
    size = len(buf[0])
    sent_users = rows = 0
    while size < size_bytes or sent_users < members:
        if rows % step == 0 and sent_users < members:
            ident = f"u-{sent_users}"
            sent_users += 1
        else:
            ident = f"nobody-{rows}"
        line = f'{ident},"note, with ""quotes"" and padding {"x" * 40}"\r\n'
        buf.append(line)
        size += len(line)
        rows += 1
        if len(buf) >= 2000:
            data = "".join(buf).encode()
            buf = []
            for i in range(0, len(data), PIECE):
                yield data[i:i + PIECE]
    if buf:
        yield "".join(buf).encode()
    stats.update(rows=rows, bytes=size, matched=sent_users)


async def main() -> None:
    parser = parse(__doc__)
    parser.add_argument("--size-mb", type=float, default=200.0)
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    prefix, topic = f"bench:{tag}:", f"bench-changes-{tag}"
    admin = AIOKafkaAdminClient(bootstrap_servers=args.kafka)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 4, 1)])
    client = aioredis.Redis.from_url(args.redis_url, decode_responses=True)
    api = Api(args.redis_url, args.kafka, prefix, {"STREAM_TOPIC_CHANGES": topic,
                                                    "STREAM_TOPIC_CONTROL": f"bench-control-{tag}",
                                                    "STREAM_TOPIC_CHANGELOG": f"bench-changelog-{tag}"})
    try:
        seconds = await fill(client, args.redis_url, Keys(prefix), args.members, args.chunk, in_segment=False)
        print(f"filled {args.members:,} users in {seconds:.1f}s")
        await api.wait()
        api.mint_key()
        baseline = peak_rss_mb(api.proc.pid)
        stats: dict[str, int] = {}
        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=None) as http:
            resp = await http.post(f"{api.url}/segments/{SID}/list",
                                   headers={"content-type": "text/csv", **api.headers},
                                   content=csv_body(args.members, int(args.size_mb * 1e6), stats))
        elapsed = time.perf_counter() - started
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        expected = {"rows": stats["rows"], "matched": stats["matched"], "unmatched": stats["rows"] - stats["matched"]}
        assert answer == expected, f"API answered {answer}, expected {expected}"
        members = int(await client.get(Keys(prefix).member_count(SID)) or 0)
        assert members == args.members, f"{members:,} members, expected {args.members:,}"
        peak = peak_rss_mb(api.proc.pid)
        print(f"uploaded {stats['bytes'] / 1e6:,.1f} MB, {stats['rows']:,} rows ({stats['matched']:,} matched and "
              f"added) in {elapsed:.1f}s: {stats['rows'] / elapsed:,.0f} rows/s, "
              f"{stats['matched'] / elapsed:,.0f} members added/s, {stats['bytes'] / 1e6 / elapsed:,.1f} MB/s")
        print(f"API peak RSS: {baseline:,.1f} MB after start-up, {peak:,.1f} MB after the upload "
              f"(+{peak - baseline:,.1f} MB)")
    finally:
        api.stop()
        await drop(client, prefix)
        await client.aclose()
        await admin.delete_topics([topic])
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
