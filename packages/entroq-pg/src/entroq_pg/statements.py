"""The SQL the backend runs, rendered once per schema name.

"now" is always ``date_trunc('milliseconds', now())``: the database clock at the
start of the transaction, at EntroQ's millisecond precision, so every decision in
one transaction uses one instant.
"""

from __future__ import annotations

from dataclasses import dataclass

from .schema import quote_ident

NOW = "date_trunc('milliseconds', now())"
# Most claims one batched claim statement serves (also the backend's batch size).
MAX_CLAIM_BATCH = 64

# Columns in the order rows are turned into Task objects.
TASK_COLUMNS = "queue, id, version, at, claimant, value, created, modified, claims, attempt, err"
TASK_COLUMNS_NO_VALUE = (
    "queue, id, version, at, claimant, ''::bytea, created, modified, claims, attempt, err"
)


def compact(sql: str) -> str:
    """Drop comments and runs of whitespace.

    psycopg caches its parse of a query only up to 4096 characters; longer ones
    are re-parsed on every execute, which costs more than the query itself.
    """
    lines = (line.split("--", 1)[0] for line in sql.splitlines())
    return " ".join(" ".join(lines).split())


def _qualified(columns: str, alias: str) -> str:
    return ", ".join(
        f"{alias}.{c.strip()}" if c.strip().isidentifier() else c for c in columns.split(",")
    )


@dataclass(frozen=True)
class Statements:
    """Every statement, with the schema name baked in."""

    claim: str
    claim_many: str
    delete_one: str
    delete_many: str
    change_one: str
    insert_many: str
    copy_in: str
    next_arrival: str
    lock_for_update: str
    lock_for_share: str
    existing: str
    delete: str
    change: str
    insert: str
    tasks_by_ids: str
    tasks_by_ids_no_value: str
    tasks_page: str
    stats: str
    time: str


def render(schema: str) -> Statements:
    """Render the statements for tables in ``schema``."""
    from . import modify_sql  # it builds on this module

    t = f"{quote_ident(schema)}.tasks"
    # Random choice in O(log n): pick a random instant in [lo - (now-lo)/4, now]
    # (lo = oldest available arrival), move to the first arrival at or after it
    # (the pivot), then take the pivot group's first task from a random rnd on
    # (wrapping within the group) that nobody holds; if the whole group is
    # locked, the next later arrival, else the oldest. A group of tasks sharing
    # one arrival (a batch insert) is chosen with the probability of the time
    # gap before it, and its members with the random rnd gaps between them.
    # The oldest group has no gap before it, so the instant starts a quarter
    # window early: it gets at least a fifth of the picks and nothing starves.
    # Every probe is an index range scan on (queue, at, rnd) bounded by
    # at <= now, so leased and future tasks are never visited.
    # Bounds are scalar subqueries (InitPlans), never joined CTE rows: only then
    # does the planner use them as index conditions instead of filters.
    prelude = f"""
        WITH r AS MATERIALIZED (
            SELECT random() * 1.25 - 0.25 AS at_frac,
                   (floor(random() * 4294967296) - 2147483648)::int4 AS k
        ),
        lo AS (
            SELECT at FROM {t}
            WHERE queue = %(q)s AND at <= {NOW} ORDER BY at LIMIT 1
        ),
        pivot AS (
            SELECT coalesce((
                SELECT at FROM {t}
                WHERE queue = %(q)s
                  AND at >= (SELECT at FROM lo)
                            + ({NOW} - (SELECT at FROM lo)) * (SELECT at_frac FROM r)
                  AND at <= {NOW}
                ORDER BY at LIMIT 1
            ), (SELECT at FROM lo)) AS at
        )
    """
    # The four probes in the order they are tried: the pivot's arrival group
    # from a random rnd (wrapping within the group), then later arrivals, then
    # earlier ones.
    probes = [
        ("at = (SELECT at FROM pivot) AND rnd >= (SELECT k FROM r)", "rnd"),
        ("at = (SELECT at FROM pivot) AND rnd < (SELECT k FROM r)", "rnd"),
        (f"at > (SELECT at FROM pivot) AND at <= {NOW}", "at, rnd"),
        ("at < (SELECT at FROM pivot)", "at, rnd"),
    ]
    claimed = f"""
        version = t.version + 1, claims = t.claims + 1, modified = {NOW},
        rnd = (floor(random() * 4294967296) - 2147483648)::int4
    """
    # coalesce runs each probe only when the ones before found nothing.
    one_of = ",".join(
        f"(SELECT id FROM {t} WHERE queue = %(q)s AND {where}"
        f" ORDER BY {order} LIMIT 1 FOR UPDATE SKIP LOCKED)"
        for where, order in probes
    )
    claim = f"""
        {prelude}
        UPDATE {t} t
        SET claimant = %(c)s, at = {NOW} + %(ms)s * interval '1 millisecond', {claimed}
        WHERE id = (SELECT coalesce({one_of}))
        RETURNING {_qualified(TASK_COLUMNS, "t")}
    """
    # Several claims on one queue at once (a batch of concurrent callers): up to
    # k tasks from the same probes, in the same order, each probe run only while
    # fewer than k were found (Append under Limit stops early, and rows are
    # locked only as they are pulled). The i-th task found goes to the i-th
    # claimant; claimants beyond the tasks found get none.
    # Each probe's own LIMIT is a constant on purpose: under a generic plan a
    # parameter LIMIT is guessed at a tenth of the rows, and with a big queue's
    # statistics that made the planner sort a sequential scan of the whole table
    # (12 ms a statement) instead of reading the index in order.
    some_of = " UNION ALL ".join(
        f"(SELECT id FROM (SELECT id FROM {t} WHERE queue = %(q)s AND {where}"
        f" ORDER BY {order} LIMIT {MAX_CLAIM_BATCH} FOR UPDATE SKIP LOCKED) p{i})"
        for i, (where, order) in enumerate(probes)
    )
    claim_many = f"""
        {prelude},
        picked AS (SELECT id, row_number() OVER () AS n FROM ({some_of} LIMIT %(k)s) found),
        wanted AS (
            SELECT * FROM unnest(%(cs)s::text[], %(mss)s::int8[]) WITH ORDINALITY AS w(c, ms, n)
        )
        UPDATE {t} t
        SET claimant = wanted.c, at = {NOW} + wanted.ms * interval '1 millisecond', {claimed}
        FROM picked JOIN wanted USING (n)
        WHERE t.id = picked.id
        RETURNING wanted.n, {_qualified(TASK_COLUMNS, "t")}
    """
    next_arrival = f"""
        SELECT extract(epoch FROM min(x.at) - clock_timestamp())::float8
        FROM unnest(%(qs)s::text[]) AS q(name),
        LATERAL (
            SELECT t.at FROM {t} t WHERE t.queue = q.name AND t.at > now()
            ORDER BY t.at LIMIT 1
        ) x
    """
    lock_cols = f"id, version, queue, claimant, at > {NOW} AS leased"
    lock_for_update = (
        f"SELECT {lock_cols} FROM {t} WHERE id = ANY(%(ids)s::text[]) ORDER BY id FOR UPDATE"
    )
    lock_for_share = (
        f"SELECT {lock_cols} FROM {t} WHERE id = ANY(%(ids)s::text[]) ORDER BY id FOR SHARE"
    )
    existing = f"SELECT id, version, queue FROM {t} WHERE id = ANY(%(ids)s::text[])"
    delete = f"DELETE FROM {t} WHERE id = ANY(%(ids)s::text[])"
    change = f"""
        UPDATE {t} t
        SET queue = c.queue, at = coalesce(c.at, {NOW}), value = c.value,
            attempt = c.attempt, err = c.err, version = t.version + 1,
            claimant = %(c)s, modified = {NOW},
            rnd = (floor(random() * 4294967296) - 2147483648)::int4
        FROM unnest(%(ids)s::text[], %(queues)s::text[], %(ats)s::timestamptz[],
                    %(values)s::bytea[], %(attempts)s::int4[], %(errs)s::text[])
             AS c(id, queue, at, value, attempt, err)
        WHERE t.id = c.id
        RETURNING {_qualified(TASK_COLUMNS, "t")}, t.at <= {NOW}
    """
    insert = f"""
        INSERT INTO {t} (id, queue, version, at, rnd, claims, attempt, created, modified,
                         claimant, err, value)
        SELECT i.id, i.queue, 0, coalesce(i.at, {NOW}),
               (floor(random() * 4294967296) - 2147483648)::int4, 0, i.attempt,
               {NOW}, {NOW}, %(c)s, i.err, i.value
        FROM unnest(%(ids)s::text[], %(queues)s::text[], %(ats)s::timestamptz[],
                    %(values)s::bytea[], %(attempts)s::int4[], %(errs)s::text[])
             AS i(id, queue, at, value, attempt, err)
        ON CONFLICT (id) DO NOTHING
        RETURNING {TASK_COLUMNS}, at <= {NOW}
    """
    claimant_filter = f"AND (%(claimant)s::text IS NULL OR claimant = %(claimant)s OR at <= {NOW})"
    # A long listing reads the queue a page at a time along the claim index, in
    # (at, rnd, id) order, each page its own short query: a reader that stalls
    # holds no connection (a held cursor let a few slow readers take the whole
    # pool). Values are not read here (they are fetched by id, a few MiB at a
    # time); the last column says whether the claimant filter lets the row through.
    page = f"""
        SELECT {TASK_COLUMNS_NO_VALUE}, at, rnd, octet_length(value),
               (%(claimant)s::text IS NULL OR claimant = %(claimant)s OR at <= {NOW})
        FROM {t}
        WHERE queue = %(q)s AND (at, rnd) >= (%(at)s, %(rnd)s)
          AND (at, rnd, id) > (%(at)s, %(rnd)s, %(id)s)
        ORDER BY at, rnd, id LIMIT %(page)s
    """
    by_ids = f"""
        SELECT {{cols}} FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS r(rid, ord)
        JOIN {t} ON id = r.rid
        WHERE (%(q)s::text IS NULL OR queue = %(q)s) {claimant_filter}
        ORDER BY r.ord LIMIT %(limit)s
    """
    stats = f"""
        SELECT queue,
               count(*),
               count(*) FILTER (WHERE at <= {NOW}),
               count(*) FILTER (WHERE at > {NOW} AND claims > 0),
               count(*) FILTER (WHERE at > {NOW} AND claims = 0),
               max(claims)
        FROM {t}
        WHERE (cardinality(%(prefixes)s::text[]) = 0 AND cardinality(%(exact)s::text[]) = 0)
           OR queue = ANY(%(exact)s::text[])
           OR EXISTS (SELECT 1 FROM unnest(%(prefixes)s::text[]) AS p(x)
                      WHERE left(queue, length(p.x)) = p.x)
        GROUP BY queue
        ORDER BY queue
        LIMIT %(limit)s
    """
    statements = Statements(
        claim=claim,
        claim_many=claim_many,
        delete_one=modify_sql.single_delete(schema),
        delete_many=modify_sql.many_single_deletes(schema),
        change_one=modify_sql.single_change(schema),
        insert_many=modify_sql.inserts_only(schema),
        copy_in=(
            f"COPY {t} (id, queue, version, at, rnd, claims, attempt, created, modified,"
            " claimant, err, value) FROM STDIN (FORMAT BINARY)"
        ),
        next_arrival=next_arrival,
        lock_for_update=lock_for_update,
        lock_for_share=lock_for_share,
        existing=existing,
        delete=delete,
        change=change,
        insert=insert,
        tasks_by_ids=by_ids.format(cols=TASK_COLUMNS),
        tasks_by_ids_no_value=by_ids.format(cols=TASK_COLUMNS_NO_VALUE),
        tasks_page=page,
        stats=stats,
        time="SELECT date_trunc('milliseconds', clock_timestamp())",
    )
    return Statements(**{k: compact(v) for k, v in vars(statements).items()})
