"""The one-statement modification, built per request shape.

The whole modification runs as one autocommit statement: it locks what it
changes, deletes and depends on (in id order, so concurrent modifications never
deadlock on those rows), checks every rule, and applies everything only if all
checks pass. It reports pass or fail only; after a failure nothing was applied
and the backend reruns the request as an explicit transaction that names every
offending task (:meth:`PgBackend._modify_in`).

Only the parts a request needs are in its statement (a worker's commit is just
"lock, check, delete"), so few parameters travel and each shape is prepared
once per connection. Explicit ids that may not collide are inserted without
ON CONFLICT, so a racing insert of the same id fails the statement instead of
being dropped silently.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .schema import quote_ident
from .statements import NOW, compact

_RND = "(floor(random() * 4294967296) - 2147483648)::int4"
_COLS = "(id, queue, version, at, rnd, claims, attempt, created, modified, claimant, err, value)"


@dataclass(frozen=True)
class Shape:
    """Which parts a modification has; one statement per distinct shape."""

    mutates: bool  # deletes or changes: rows to lock FOR UPDATE and check
    depends: bool
    checks_ids: bool  # explicit insert ids that must not exist
    deletes: bool
    changes: bool
    hard_inserts: bool  # inserts that must not collide
    soft_inserts: bool  # skip_colliding inserts with explicit ids


def _data_unnest(prefix: str) -> str:
    return (
        f"unnest(%({prefix}ids)b::text[], %({prefix}queues)b::text[],"
        f" %({prefix}ats)b::timestamptz[], %({prefix}values)b::bytea[],"
        f" %({prefix}attempts)b::int4[], %({prefix}errs)b::text[])"
        " AS i(id, queue, at, value, attempt, err)"
    )


def single_delete(schema: str) -> str:
    """Delete one task if its version matches and nobody else holds it (0 rows: failed)."""
    t = f"{quote_ident(schema)}.tasks"
    return compact(
        f"DELETE FROM {t} WHERE id = %(id)s AND version = %(v)s"
        f" AND (claimant = %(c)s OR at <= {NOW}) RETURNING {NOW}"
    )


def many_single_deletes(schema: str) -> str:
    """Several one-task deletes of different callers in one statement.

    Each row is deleted or not on its own, exactly as its own single_delete
    would have; ``n`` (1-based, in the order given) names the ones deleted. A
    task named twice is deleted once and returned once (DELETE ... USING uses
    one of the matching rows), so only one of its callers succeeds, as if they
    had raced.
    """
    t = f"{quote_ident(schema)}.tasks"
    return compact(
        f"DELETE FROM {t} t USING unnest(%(ids)s::text[], %(vs)s::int8[], %(cs)s::text[])"
        " WITH ORDINALITY AS d(id, v, c, n)"
        f" WHERE t.id = d.id AND t.version = d.v AND (t.claimant = d.c OR t.at <= {NOW})"
        " RETURNING d.n"
    )


def single_change(schema: str) -> str:
    """Change one task under the same conditions; returns what the result needs."""
    t = f"{quote_ident(schema)}.tasks"
    return compact(
        f"UPDATE {t} SET queue = %(queue)s, at = coalesce(%(at)s, {NOW}), value = %(value)s,"
        f" attempt = %(attempt)s, err = %(err)s, version = version + 1, claimant = %(c)s,"
        f" modified = {NOW}, rnd = {_RND}"
        f" WHERE id = %(id)s AND version = %(v)s AND (claimant = %(c)s OR at <= {NOW})"
        f" RETURNING {NOW}, created, claims"
    )


def inserts_only(schema: str) -> str:
    """Insert tasks that may not collide; a collision fails the whole statement."""
    t = f"{quote_ident(schema)}.tasks"
    values = (
        f"i.id, i.queue, 0, coalesce(i.at, {NOW}), {_RND}, 0, i.attempt,"
        f" {NOW}, {NOW}, %(c)s, i.err, i.value"
    )
    return compact(
        f"WITH ins AS (INSERT INTO {t} {_COLS} SELECT {values} FROM {_data_unnest('hard_')})"
        f" SELECT {NOW}"
    )


@functools.lru_cache(maxsize=256)
def build(schema: str, shape: Shape) -> str:
    """Render the statement for one shape; cached, so each string is built once."""
    t = f"{quote_ident(schema)}.tasks"
    ctes: list[str] = []
    checks: list[str] = []
    if shape.mutates:
        ctes.append(
            f"mut AS MATERIALIZED (SELECT id, version, claimant, at FROM {t}"
            " WHERE id = ANY(%(mut_ids)b::text[]) ORDER BY id FOR UPDATE)"
        )
        checks.append(
            "(SELECT count(*) FROM mut"
            " JOIN unnest(%(mut_ids)b::text[], %(mut_versions)b::int8[]) AS r(id, v)"
            "   ON mut.id = r.id AND mut.version = r.v"
            f" WHERE mut.claimant = %(c)s OR mut.at <= {NOW})"
            " = cardinality(%(mut_ids)b::text[])"
        )
    if shape.depends:
        ctes.append(
            f"dep AS MATERIALIZED (SELECT id, version FROM {t}"
            " WHERE id = ANY(%(dep_ids)b::text[]) ORDER BY id FOR SHARE)"
        )
        checks.append(
            "(SELECT count(*) FROM dep"
            " JOIN unnest(%(dep_ids)b::text[], %(dep_versions)b::int8[]) AS r(id, v)"
            "   ON dep.id = r.id AND dep.version = r.v)"
            " = cardinality(%(dep_ids)b::text[])"
        )
    if shape.checks_ids:
        checks.append(f"NOT EXISTS (SELECT 1 FROM {t} WHERE id = ANY(%(check_ids)b::text[]))")
    ctes.append(f"ok AS MATERIALIZED (SELECT {' AND '.join(checks) or 'true'} AS pass)")
    passed = "(SELECT pass FROM ok)"
    if shape.deletes:
        ctes.append(f"del AS (DELETE FROM {t} WHERE id = ANY(%(del_ids)b::text[]) AND {passed})")
    if shape.changes:
        ctes.append(
            f"chg AS (UPDATE {t} t"
            f" SET queue = i.queue, at = coalesce(i.at, {NOW}), value = i.value,"
            " attempt = i.attempt, err = i.err, version = t.version + 1,"
            f" claimant = %(c)s, modified = {NOW}, rnd = {_RND}"
            f" FROM {_data_unnest('chg_')}"
            f" WHERE t.id = i.id AND {passed}"
            " RETURNING t.id, t.created, t.claims)"
        )
    values = (
        f"i.id, i.queue, 0, coalesce(i.at, {NOW}), {_RND}, 0, i.attempt,"
        f" {NOW}, {NOW}, %(c)s, i.err, i.value"
    )
    if shape.hard_inserts:
        ctes.append(
            f"hard AS (INSERT INTO {t} {_COLS} SELECT {values}"
            f" FROM {_data_unnest('hard_')} WHERE {passed})"
        )
    if shape.soft_inserts:
        ctes.append(
            f"soft AS (INSERT INTO {t} {_COLS} SELECT {values}"
            f" FROM {_data_unnest('soft_')} WHERE {passed}"
            " ON CONFLICT (id) DO NOTHING RETURNING id)"
        )
    outputs = [passed, NOW]
    outputs.append("(SELECT array_agg(id) FROM soft)" if shape.soft_inserts else "NULL::text[]")
    if shape.changes:
        outputs += [
            "(SELECT array_agg(id) FROM chg)",
            "(SELECT array_agg(created) FROM chg)",
            "(SELECT array_agg(claims) FROM chg)",
        ]
    else:
        outputs += ["NULL::text[]", "NULL::timestamptz[]", "NULL::int8[]"]
    return compact(f"WITH {', '.join(ctes)} SELECT {', '.join(outputs)}")
