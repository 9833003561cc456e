#!/usr/bin/env python3
"""Clippy inside the CI's release build (issue 36): a RUSTC_WORKSPACE_WRAPPER.

`cargo clippy --workspace --all-targets -- -D warnings` is a check build of
every crate of its own: 280 s of CPU here, nearly all of it type-checking
the dependencies (the AWS SDK crates most) and aws-lc's C build, none of it
shared with the release build the tests run. Cargo calls this wrapper for
every workspace unit of that release build instead (lib, bins, lib and
bins under test, integration tests, benches: what `--all-targets` lints),
so only the workspace's own code is checked twice:

1. rustc builds the unit with cargo's arguments, untouched: the binaries
   tested, demonstrated and published are rustc's (clippy's driver
   compiles with MIR optimisations off, so it is never the compiler);
2. then clippy's driver checks the same unit (`--emit=metadata` into a
   scratch folder, against the dependencies rustc just built) with
   `-D warnings`, as `cargo clippy ... -- -D warnings` does. A lint fails
   the unit, so the build, with clippy's own diagnostic.

Anything that is not a compile of a crate (cargo's `-vV` and `--print`
probes) goes to rustc alone. Set it for a whole run (`.ci/run` exports
it): cargo hashes the wrapper's path into the workspace units' metadata,
so a later build without it would rebuild the workspace, and the binaries
of a wrapped build are not the bytes of an unwrapped one (same code, other
symbol hashes: their content addresses differ). Cargo tracks the path
only: a target folder that is already fresh is not linted again after an
edit of this file or of the lint flags (a fresh clone, as CI builds, always
is).

    RUSTC_WORKSPACE_WRAPPER=$PWD/tools/lint_wrapper.py cargo test --release ...

What differs from `cargo clippy`: the release profile's cfg (no
`debug_assertions`), so code under `cfg(debug_assertions)` is not linted.
"""
import os
import shutil
import subprocess
import sys
import tempfile

# What `cargo clippy -- -D warnings` hands its driver.
CLIPPY_ARGS = "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"


def expanded(args):
    """The arguments with `@file` response files (one argument per line,
    which cargo writes when a command line is too long) read in."""
    out = []
    for a in args:
        if a.startswith("@"):
            with open(a[1:], encoding="utf-8") as f:
                out += f.read().splitlines()
        else:
            out.append(a)
    return out


def lint_args(args, scratch):
    """cargo's rustc arguments, turned into a check into `scratch`."""
    out = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--out-dir", "-o"):
            out += ["--out-dir", scratch]
            i += 2
            continue
        # rustc's incremental cache is rustc's alone
        if a == "-C" and i + 1 < len(args) and args[i + 1].startswith("incremental="):
            i += 2
            continue
        if a.startswith("-Cincremental="):
            i += 1
            continue
        if a.startswith("--out-dir="):
            out.append("--out-dir=" + scratch)
        elif a.startswith("--emit"):
            out.append("--emit=metadata")
        elif a.startswith("--json="):
            # Diagnostics only: an `artifacts` notice for the scratch rmeta
            # would tell cargo's pipelining the unit's metadata is ready.
            kept = [k for k in a[len("--json="):].split(",") if k.startswith("diagnostic")]
            if kept:
                out.append("--json=" + ",".join(kept))
        else:
            out.append(a)
        i += 1
    return out


def main():
    rustc, args = sys.argv[1], sys.argv[2:]
    # close_fds=False: both inherit cargo's jobserver pipe (CARGO_MAKEFLAGS).
    built = subprocess.call([rustc] + args, close_fds=False)
    if built != 0:
        sys.exit(built)
    args = expanded(args)
    compiles = "--crate-name" in args and not any(
        a == "-" or a.startswith("--print") or a in ("-vV", "-V", "--version") for a in args
    )
    if not compiles:
        sys.exit(0)
    scratch = tempfile.mkdtemp(prefix="lint-")
    try:
        env = dict(os.environ, CLIPPY_ARGS=CLIPPY_ARGS)
        linted = subprocess.call(["clippy-driver", rustc] + lint_args(args, scratch), env=env, close_fds=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(linted)


if __name__ == "__main__":
    main()
