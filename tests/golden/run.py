#!/usr/bin/env python3
"""Golden-file runner: the same command scripts against Rostfix or real Postfix.

Each case is a directory tests/golden/<suite>/<case>/ holding `cmd.sh`, the
input files it uses, and `expected.ref`, the transcript real Postfix produced.
The runner copies the case to a fresh temporary directory (input files get an
mtime one hour in the past, because Postfix commands pause when main.cf is
younger than a second), puts the subject's commands first on PATH under their
Postfix names, and runs `cmd.sh` there with a `run` shell function that prints
a transcript:

    $ postmap -q key texthash:table      the command
    value                                its standard output
    ! postmap: warning: ...              its standard error, each line after "! "
    ? 0                                  its exit status

SUBJECT=rostfix (default) compares with expected.ref (cases named system-*
are compared with Debian's Postfix run live on the same machine, when it is
installed, because they print host names and interface addresses); SUBJECT=postfix runs
Debian's Postfix; --regen (with SUBJECT=postfix) rewrites expected.ref, which
is how every expected.ref in this tree was produced.

Deliberate differences (DESIGN.md section 1) are applied to the expected
text before comparing with Rostfix: `mail_name` is Rostfix, and
`smtpd_forbid_bare_newline` defaults to `normalize` (Postfix 3.9+). They touch
only the output of the Postfix commands, never `cat`/`ls` transcripts.

Usage: run.py [--regen] [--list] [SUITE[/CASE] ...]
"""

import difflib
import re
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
COMMANDS = ["postfix", "postconf", "postmap", "postalias", "newaliases",
            "sendmail", "mailq", "postqueue", "postsuper", "postcat"]
POSTFIX_PATHS = {"newaliases": "/usr/bin/newaliases", "mailq": "/usr/bin/mailq"}

PRELUDE = r'''
run() {
    printf '$ %s\n' "$*"
    "$@" >"$RUN_TMP/out" 2>"$RUN_TMP/err" </dev/null
    rc=$?
    cat "$RUN_TMP/out"
    sed 's/^/! /' "$RUN_TMP/err"
    printf '? %s\n' "$rc"
}
# run_in INPUT CMD...: like run, with INPUT as standard input.
run_in() {
    input=$1; shift
    printf '$ %s < %s\n' "$*" "$input"
    "$@" <"$input" >"$RUN_TMP/out" 2>"$RUN_TMP/err"
    rc=$?
    cat "$RUN_TMP/out"
    sed 's/^/! /' "$RUN_TMP/err"
    printf '? %s\n' "$rc"
}
'''


DEVIATIONS = [
    (re.compile(r"^(mail_name = |milter_macro_v = )Postfix\b"), r"\1Rostfix"),
    (re.compile(r"\bESMTP Postfix$"), "ESMTP Rostfix"),
    (re.compile(r"^Postfix$"), "Rostfix"),
    (re.compile(r"^smtpd_forbid_bare_newline = no$"), "smtpd_forbid_bare_newline = normalize"),
]
RAW_COMMANDS = ("cat", "ls", "stat", "python3", "sort", "comm", "od", "diff")


def apply_deviations(text):
    """Expected Postfix output as Rostfix should print it."""
    out = []
    raw = False
    for line in text.splitlines(True):
        if line.startswith("$ "):
            words = line[2:].split()
            raw = bool(words) and words[0] in RAW_COMMANDS
        elif not raw and not line.startswith(("! ", "? ")):
            body = line.rstrip("\n")
            for pattern, repl in DEVIATIONS:
                body = pattern.sub(repl, body)
            line = body + ("\n" if line.endswith("\n") else "")
        out.append(line)
    return "".join(out)


def subject_bin(subject, name):
    if subject == "postfix":
        return POSTFIX_PATHS.get(name, "/usr/sbin/" + name)
    return os.path.join(os.environ.get("ROSTFIX_BIN", os.path.join(ROOT, "target", "release")), name)


def cases(selectors):
    found = []
    for suite in sorted(os.listdir(HERE)):
        sdir = os.path.join(HERE, suite)
        if not os.path.isdir(sdir) or suite.startswith("_"):
            continue
        for case in sorted(os.listdir(sdir)):
            cdir = os.path.join(sdir, case)
            if os.path.isfile(os.path.join(cdir, "cmd.sh")):
                name = suite + "/" + case
                if not selectors or any(name == s or name.startswith(s.rstrip("/") + "/") for s in selectors):
                    found.append((name, cdir))
    return found


def run_case(subject, cdir):
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        work = os.path.join(tmp, "case")
        shutil.copytree(cdir, work, ignore=shutil.ignore_patterns("expected.ref"))
        past = time.time() - 3600
        for dirpath, _, files in os.walk(work):
            for f in files:
                os.utime(os.path.join(dirpath, f), (past, past))
        bindir = os.path.join(tmp, "bin")
        os.mkdir(bindir)
        for name in COMMANDS:
            target = subject_bin(subject, name)
            if os.path.exists(target):
                os.symlink(target, os.path.join(bindir, name))
        runtmp = os.path.join(tmp, "run")
        os.mkdir(runtmp)
        env = dict(os.environ)
        env["PATH"] = bindir + ":" + env.get("PATH", "/usr/bin:/bin")
        env["RUN_TMP"] = runtmp
        env["LC_ALL"] = "C"
        env.pop("MAIL_CONFIG", None)
        script = PRELUDE + open(os.path.join(cdir, "cmd.sh")).read()
        proc = subprocess.run(["sh", "-c", script], cwd=work, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        return proc.stdout.decode("utf-8", "replace").replace(tmp, "TMP")


def main(argv):
    regen = "--regen" in argv
    listing = "--list" in argv
    selectors = [a for a in argv if not a.startswith("--")]
    subject = os.environ.get("SUBJECT", "rostfix")
    if regen and subject != "postfix":
        sys.exit("--regen records real Postfix: run with SUBJECT=postfix")
    passed = failed = 0
    for name, cdir in cases(selectors):
        if listing:
            print(name)
            continue
        got = run_case(subject, cdir)
        ref = os.path.join(cdir, "expected.ref")
        if regen:
            with open(ref, "w") as f:
                f.write(got)
            print("recorded", name)
            continue
        want = open(ref).read() if os.path.exists(ref) else ""
        live = subject == "rostfix" and name.split("/")[-1].startswith("system-") \
            and os.path.exists(subject_bin("postfix", "postconf"))
        if live:
            # Host names and interfaces differ between machines: compare
            # with real Postfix on this machine, now.
            want = run_case("postfix", cdir)
        if subject == "rostfix":
            want = apply_deviations(want)
        if got == want:
            passed += 1
        else:
            failed += 1
            print("FAIL", name)
            sys.stdout.writelines(difflib.unified_diff(
                want.splitlines(True), got.splitlines(True), "expected.ref", subject))
    if not regen and not listing:
        print(f"golden ({subject}): {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
