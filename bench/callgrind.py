"""Instruction counts from callgrind output files.

`profile(path)` reads a callgrind.out file (event Ir) and returns the total
and the self cost per object (shared library or executable) and per function.
The per-call figure of a loop is (profile of N calls - profile of 0 calls) / N:
startup, warm-up and teardown cancel out.

Format notes (valgrind's "Callgrind Format Specification"): `ob=`/`fn=`
set the current object/function (names may be compressed to "(id)" after
their first use), `cob=`/`cfn=`/`calls=` describe a call, and the cost line
right after `calls=` is the call's inclusive cost (skipped: self cost only).
"""
import re
import subprocess
from collections import defaultdict

_NAMED = re.compile(r"^\((\d+)\)(?: (.*))?$")


def _name(table, value):
    m = _NAMED.match(value)
    if not m:
        return value
    ident, name = m.group(1), m.group(2)
    if name is not None:
        table[ident] = name
        return name
    return table.get(ident, "(" + ident + ")")


def profile(path):
    objs, fns, files = {}, {}, {}
    by_obj = defaultdict(int)
    by_fn = defaultdict(int)
    total = 0
    ob = fn = "?"
    skip_next = False
    events = None
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) < 2:
                    continue
                ir = int(parts[1])
                total += ir
                by_obj[ob] += ir
                by_fn[(ob, fn)] += ir
                continue
            key, _, value = line.partition("=")
            if key == "ob":
                ob = _name(objs, value)
            elif key == "fn":
                fn = _name(fns, value)
            elif key in ("cob",):
                _name(objs, value)
            elif key in ("cfn", "cfi", "cfl"):
                _name(fns if key == "cfn" else files, value)
            elif key in ("fl", "fi", "fe"):
                _name(files, value)
            elif key == "calls":
                skip_next = True
            elif key == "events":
                events = value.split()
    if events and events[0] != "Ir":
        raise ValueError(f"{path}: expected Ir as the first event, got {events}")
    return {"total": total, "by_obj": dict(by_obj), "by_fn": dict(by_fn)}


def per_call(full, base, n):
    """(full - base) / n for the totals, objects and functions of two profiles."""
    def diff(a, b):
        keys = set(a) | set(b)
        return {k: (a.get(k, 0) - b.get(k, 0)) / n for k in keys}
    return {"total": (full["total"] - base["total"]) / n,
            "by_obj": diff(full["by_obj"], base["by_obj"]),
            "by_fn": diff(full["by_fn"], base["by_fn"])}


def short_object(path):
    """'/usr/lib/x86_64-linux-gnu/libcurl.so.4.8.0' -> 'libcurl'."""
    base = path.rsplit("/", 1)[-1]
    if not base.startswith("lib") and ".so" not in base and not base.startswith("ld-"):
        return base  # an executable: lua5.4, curl_floor
    m = re.match(r"(lib[\w+-]+?|ld-linux[\w-]*|[\w.+-]+?)(?:[-.]\d[\w.]*)?(?:\.so.*)?$", base)
    name = m.group(1) if m else base
    if name == "core":
        return "ddb core.so"
    return name


def run(cmd, out_file, env=None, cwd=None):
    """Runs cmd under callgrind writing out_file; returns the profile."""
    full = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out_file, "--dump-instr=no",
            "--compress-strings=yes", "--compress-pos=no"] + list(cmd)
    p = subprocess.run(full, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"callgrind run failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return profile(out_file)
