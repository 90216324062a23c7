#!/usr/bin/env bash
# sqlite.sh LIB -- sqlite3 on neap: a 200k-row table made with a recursive
# CTE, group-by queries, an index, a join, then the same queries again.
. "$(dirname "$0")/common.sh"
setup "$@"
need sqlite3

cat >"$DATA/make.sql" <<'SQL'
PRAGMA cache_size = -20000;
CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL, d BLOB);
WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 200000)
INSERT INTO t SELECT i, (i * 7919) % 1000, printf('name%05d', (i * 31) % 50000),
                     (i % 997) * 1.5, zeroblob(i % 300) FROM r;
SELECT count(*), sum(a), total(c), sum(length(d)) FROM t;
SELECT a % 10 AS k, count(*), sum(c), min(b), max(b) FROM t GROUP BY k ORDER BY k;
SELECT b, count(*), sum(a) FROM t GROUP BY b ORDER BY count(*) DESC, b LIMIT 5;
CREATE INDEX tb ON t(b);
CREATE INDEX ta ON t(a, c);
SELECT count(DISTINCT b) FROM t;
SELECT b, count(*) FROM t WHERE b BETWEEN 'name01000' AND 'name01010' GROUP BY b;
CREATE TABLE u AS SELECT a, group_concat(id, ',') AS ids FROM t WHERE a < 50 GROUP BY a;
SELECT u.a, length(u.ids), count(t.id) FROM u JOIN t ON t.a = u.a GROUP BY u.a ORDER BY u.a LIMIT 10;
SELECT id, b FROM t ORDER BY c DESC, b, id LIMIT 5;
DELETE FROM t WHERE id % 3 = 0;
UPDATE t SET b = b || '-x' WHERE id % 5 = 0;
VACUUM;
SELECT count(*), max(length(b)), sum(a) FROM t;
PRAGMA integrity_check;
SQL

scenario() {
    "${RUN[@]}" sqlite3 db.sqlite <"$DATA/make.sql"
    "${RUN[@]}" sqlite3 db.sqlite "SELECT a, count(*) FROM t GROUP BY a ORDER BY 2 DESC, 1 LIMIT 5;"
}
compare_runs
