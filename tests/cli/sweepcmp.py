#!/usr/bin/env python3
"""sweepcmp.py REF DIR [--ranks] -- compare the sweep directory DIR with the
reference sweep REF of the same grid (tests/cli/sweep*.sh).

Checks that DIR/sweep.json lists the same point ids as REF, each once; that
every point has exactly one finished result (DIR/points/<id>/result.json
holding its id) and no other point directories exist; and that every result
equals REF's field by field, except the fields that say where and how long
(train_seconds, analyze_seconds, resumed, ran_by). Numbers are compared
exactly (the files hold them %.17g: the runs are deterministic).
With --ranks, prints the sorted set of MPI ranks that ran points.
Prints one line per problem and "ok N points"; exits 1 on any problem.
"""
import json
import os
import sys

VOLATILE = ("train_seconds", "analyze_seconds", "resumed", "ran_by")


def points(d):
    meta = json.load(open(os.path.join(d, "sweep.json")))
    return [p["id"] for p in meta["points"]]


def result(d, pid):
    f = os.path.join(d, "points", pid, "result.json")
    if not os.path.exists(f):
        return None
    r = json.load(open(f))
    return r


def main():
    ref, d = sys.argv[1], sys.argv[2]
    bad = []
    ids_ref, ids = points(ref), points(d)
    if ids != ids_ref:
        bad.append("point lists differ: %d vs %d ids" % (len(ids), len(ids_ref)))
    if len(set(ids)) != len(ids):
        bad.append("an id appears twice in sweep.json")
    extra = set(os.listdir(os.path.join(d, "points"))) - set(ids)
    if extra:
        bad.append("point directories not in the grid: %s" % sorted(extra))
    ranks = set()
    for pid in ids_ref:
        a, b = result(ref, pid), result(d, pid)
        if b is None:
            bad.append("%s: no result" % pid)
            continue
        if b.get("id") != pid:
            bad.append("%s: result.json holds id %s" % (pid, b.get("id")))
        ranks.add(b.get("ran_by", {}).get("rank"))
        for k in VOLATILE:
            a.pop(k, None)
            b.pop(k, None)
        if a != b:
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            bad.append("%s: differs from the reference in %s" % (pid, keys))
    for line in bad:
        print("sweepcmp:", line)
    if "--ranks" in sys.argv:
        print("ranks", sorted(r for r in ranks if r is not None))
    print("ok %d points" % len(ids_ref) if not bad else "FAILED")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
