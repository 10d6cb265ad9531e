"""Time series in PostgreSQL: a BRIN index, downsampling with date_bin, retention by partition.

Run: python snippets/databases/model_timeseries.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg

# Every wait is bounded: connecting (connect_timeout), any statement, any lock wait — a
# DROP SCHEMA queued behind a leftover lock would otherwise wait forever.
TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"

DAYS = 7
STEP_SECONDS = 10  # one reading every 10 s for a week: 60 480 rows


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=databases/model_timeseries`, which starts one and stops it afterwards"
        )
    return url


@contextmanager
def scratch_schema(url: str) -> Iterator[psycopg.Connection]:
    schema = f"ts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}")
        try:
            yield conn
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


# --8<-- [start:load]
READINGS = f"""
    SELECT ts, 20 + 5 * sin(2 * pi() * extract(epoch FROM ts) / 86400)  -- a daily cycle
    FROM generate_series(timestamptz '2024-01-01 00:00+00',
                         timestamptz '2024-01-01 00:00+00' + interval '{DAYS} days'
                             - interval '{STEP_SECONDS} seconds',
                         interval '{STEP_SECONDS} seconds') AS ts
"""


def load(conn: psycopg.Connection) -> None:
    """The same readings twice: a plain table, and one partitioned by day. Autovacuum is
    off for them, so sizes change only when this code changes them."""
    conn.execute("""CREATE TABLE readings (ts timestamptz NOT NULL, celsius float8 NOT NULL)
                    WITH (autovacuum_enabled = false)""")
    conn.execute(f"INSERT INTO readings {READINGS}")  # arrives in time order, like real data
    conn.execute("CREATE INDEX readings_btree ON readings USING btree (ts)")
    conn.execute("CREATE INDEX readings_brin ON readings USING brin (ts)")
    conn.execute("""CREATE TABLE readings_by_day (ts timestamptz NOT NULL,
                                                  celsius float8 NOT NULL)
                    PARTITION BY RANGE (ts)""")
    for day in range(DAYS):
        conn.execute(f"""CREATE TABLE readings_day{day} PARTITION OF readings_by_day
            FOR VALUES FROM ('2024-01-01 00:00+00'::timestamptz + interval '{day} days')
                         TO ('2024-01-01 00:00+00'::timestamptz + interval '{day + 1} days')
            WITH (autovacuum_enabled = false)""")
    conn.execute(f"INSERT INTO readings_by_day {READINGS}")
    conn.execute("ANALYZE readings; ANALYZE readings_by_day")


# --8<-- [end:load]


def one(conn: psycopg.Connection, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


# --8<-- [start:sizes]
def index_sizes(conn: psycopg.Connection) -> dict[str, int]:
    return {
        name: one(conn, f"SELECT pg_relation_size('{name}')")
        for name in ("readings", "readings_btree", "readings_brin")
    }


def size_trend(conn: psycopg.Connection, days: tuple[int, ...] = (1, 3, 7)) -> list[tuple]:
    """(rows, table, B-tree, BRIN) bytes for the first d days of readings, for each d:
    a ratio of sizes means little at one size, so measure it at several."""
    trend = []
    for d in days:
        conn.execute(f"""CREATE TABLE sample AS SELECT * FROM readings
            WHERE ts < timestamptz '2024-01-01 00:00+00' + interval '{d} days' ORDER BY ts""")
        conn.execute("CREATE INDEX sample_btree ON sample USING btree (ts)")
        conn.execute("CREATE INDEX sample_brin ON sample USING brin (ts)")
        sizes = [
            one(conn, f"SELECT pg_relation_size('{name}')")
            for name in ("sample", "sample_btree", "sample_brin")
        ]
        trend.append((one(conn, "SELECT count(*) FROM sample"), *sizes))
        conn.execute("DROP TABLE sample")
    return trend


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan tree as a list, parents before children."""
    return [node] + [n for child in node.get("Plans", []) for n in plan_nodes(child)]


# --8<-- [end:sizes]


# --8<-- [start:brin]
def range_query(conn: psycopg.Connection, index: str) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of one hour out of the week, when `index` is the only
    index on readings (the other one is dropped inside a transaction that rolls back)."""
    other = {"readings_btree": "readings_brin", "readings_brin": "readings_btree"}[index]
    with conn.transaction(force_rollback=True):
        conn.execute(f"DROP INDEX {other}")
        plan = one(
            conn,
            """EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT avg(celsius) FROM readings
               WHERE ts >= '2024-01-03 10:00+00' AND ts < '2024-01-03 11:00+00'""",
        )[0]["Plan"]
    nodes = plan_nodes(plan)
    heap = next((n for n in nodes if n["Node Type"] == "Bitmap Heap Scan"), {})
    return {
        "plan": [
            n["Node Type"] + (f" on {n['Index Name']}" if "Index Name" in n else "") for n in nodes
        ],
        "rows": int(plan["Plans"][0]["Actual Rows"]),  # what the scan under the Aggregate found
        "pages": plan["Shared Hit Blocks"] + plan["Shared Read Blocks"],  # index + table
        # a lossy bitmap holds whole pages: every row on them is checked against the WHERE
        "lossy heap blocks": heap.get("Lossy Heap Blocks", 0),
        "rows removed by recheck": heap.get("Rows Removed by Index Recheck", 0),
    }


# --8<-- [end:brin]


# --8<-- [start:downsample]
def downsample(conn: psycopg.Connection, limit: int = 4) -> list[tuple[str, int, float, float]]:
    """Hourly buckets (date_bin), each with a 3-hour moving average (a window function)."""
    return conn.execute(
        """SELECT to_char(bucket AT TIME ZONE 'UTC', 'MM-DD HH24:MI'), n,
                  round(hourly::numeric, 2)::float8,
                  round(avg(hourly) OVER (ORDER BY bucket ROWS BETWEEN 2 PRECEDING
                                                         AND CURRENT ROW)::numeric, 2)::float8
           FROM (SELECT date_bin('1 hour', ts, timestamptz '2024-01-01 00:00+00') AS bucket,
                        count(*) AS n, avg(celsius) AS hourly
                 FROM readings GROUP BY bucket) AS hours
           ORDER BY bucket LIMIT %s""",
        (limit,),
    ).fetchall()


# --8<-- [end:downsample]


# --8<-- [start:retention]
def retention(conn: psycopg.Connection, days: int = 5) -> dict[str, tuple[int, int, float, int]]:
    """Forget the oldest `days`, one day at a time like a nightly job: DELETE a day's rows
    vs DROP a day's partition, interleaved so both see the same machine load. Returns,
    per method: (rows left, bytes on disk afterwards, the fastest day's seconds — each day
    is the same work, so the fastest is the one a busy machine disturbed least — and the
    median WAL bytes per day: the work the server logged, which no machine load changes)."""
    seconds: dict[str, list[float]] = {"DELETE": [], "DROP PARTITION": []}
    wal: dict[str, list[int]] = {"DELETE": [], "DROP PARTITION": []}
    for day in range(days):
        for method, sql, args in [
            (  # marks every row of the day dead; the space waits for VACUUM
                "DELETE",
                "DELETE FROM readings WHERE ts < timestamptz '2024-01-01 00:00+00' + %s",
                (timedelta(days=day + 1),),
            ),
            ("DROP PARTITION", f"DROP TABLE readings_day{day}", None),  # unlinks its files
        ]:
            lsn = one(conn, "SELECT pg_current_wal_insert_lsn()")
            start = time.perf_counter()
            conn.execute(sql, args)
            seconds[method].append(time.perf_counter() - start)
            wal[method].append(
                int(one(conn, f"SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '{lsn}')"))
            )
    partitions = """SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits
                    WHERE inhparent = 'readings_by_day'::regclass"""
    left = {
        "DELETE": ("SELECT count(*) FROM readings", "SELECT pg_total_relation_size('readings')"),
        "DROP PARTITION": ("SELECT count(*) FROM readings_by_day", partitions),
    }
    return {
        method: (
            one(conn, rows),
            one(conn, size),
            min(seconds[method]),
            int(statistics.median(wal[method])),
        )
        for method, (rows, size) in left.items()
    }


# --8<-- [end:retention]


def main() -> None:
    url = database_url()
    with scratch_schema(url) as conn:
        load(conn)
        sizes = index_sizes(conn)
        rows = one(conn, "SELECT count(*) FROM readings")
        print(f"{rows} readings, table ~{sizes['readings'] // 1024} kB")
        print(f"  B-tree index on ts: ~{sizes['readings_btree'] // 1024} kB")
        print(
            f"  BRIN index on ts:   ~{sizes['readings_brin'] // 1024} kB"
            f" ({sizes['readings_btree'] / sizes['readings_brin']:.1f}x smaller)"
        )
        print("  by table size (24 kB is BRIN's minimum: meta page, range map, one summary page)")
        for n, table, btree, brin in size_trend(conn):
            print(
                f"    {n:>6} rows, table ~{table // 1024} kB:"
                f" B-tree ~{btree // 1024} kB, BRIN ~{brin // 1024} kB,"
                f" {btree / brin:.1f}x smaller"
            )
        queries = {}
        for index, label in [("readings_btree", "B-tree"), ("readings_brin", "BRIN")]:
            q = queries[label] = range_query(conn, index)
            print(f"  one hour, {label} only: {' -> '.join(q['plan'])}")
            print(f"    {q['rows']} rows found, ~{q['pages']} pages touched (index and table)")
            if q["lossy heap blocks"]:
                print(
                    f"    lossy: whole block ranges, ~{q['lossy heap blocks']} table pages;"
                    f" ~{q['rows removed by recheck']} rows read and thrown away by the recheck"
                )
        ratio = queries["BRIN"]["pages"] / queries["B-tree"]["pages"]
        print(f"  for the same rows BRIN touched {ratio:.1f}x the pages the B-tree did")
        print("hourly averages with a 3-hour moving average:")
        for bucket, n, hourly, moving in downsample(conn):
            print(f"  {bucket}  {n} readings  avg {hourly:.2f}  moving {moving:.2f}")
        before = one(conn, "SELECT pg_total_relation_size('readings')")
        print(f"retention, forget the first 5 days (table + indexes were ~{before // 1024} kB):")
        results = retention(conn)
        for method, (left, size, seconds, wal) in results.items():
            print(
                f"  {method:15} {left} rows left, ~{size // 1024} kB on disk,"
                f" fastest day {seconds * 1000:.2f} ms, ~{wal // 1024} kB of WAL per day"
            )
        delete, drop = results["DELETE"], results["DROP PARTITION"]
        print(
            f"dropping partitions was {delete[2] / drop[2]:.1f}x faster, logged"
            f" {delete[3] / drop[3]:.1f}x less WAL, and gave the space back at once"
        )


if __name__ == "__main__":
    main()
