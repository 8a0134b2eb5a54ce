#!/usr/bin/env python3
"""SMTP dialog runner: the same dialog scripts against Rostfix or real Postfix.

Each case is a file tests/dialog/cases/<name>.dialog. For every case the
runner builds a fresh private mail system in a temporary directory TMP:

    TMP/etc/main.cf      BASE_MAIN_CF below plus the case's `config:` lines
    TMP/etc/master.cf    common.MASTER_CF: smtpd on 127.0.0.1:<a free port>
    TMP/etc/vmailbox     alice@example.test and bob@example.test (postmap'd)
    TMP/queue, TMP/data  queue_directory, data_directory
    TMP/vmail/alice/Maildir/   virtual mailboxes (created on delivery)
    TMP/maillog          maillog_file

starts it with `postfix -c TMP/etc start`, waits until the port listens,
plays the dialog over TCP, checks the after-dialog expectations and stops
it with `postfix -c TMP/etc stop` (always, also when the case fails).
Cases run in parallel (-j, default 4), each on its own port.

Dialog lines (one per line; leading spaces are not allowed):

    # comment                  ignored (blank lines too)
    config: name = value       added to main.cf before start
    client: 127.0.0.2          connect from this source address (default 127.0.0.1)
    table: NAME KEY VALUE      a line of TMP/etc/NAME, postmap'd as hash: before
                               start (name it hash:$config_directory/NAME)
    > TEXT                     send TEXT + CRLF
    >raw TEXT                  send TEXT and nothing else
    < 250 Ok                   expect one reply line, exactly (without CRLF)
    <~ REGEX                   expect one reply line matching REGEX (fullmatch)
    close                      expect the server to close the connection
    wait                       the same as close
    hangup                     the client closes the connection
    connect                    close the connection (if any) and open a new one
    sleep 1.5                  pause (seconds)
    expect-maildir: alice 1    after the dialog: within 10 s alice's
                               Maildir/new holds exactly 1 file
    expect-message: alice RE   after the dialog: some file in alice's
                               Maildir/new matches RE (re.search, MULTILINE)
    expect-log: REGEX          after the dialog: within 10 s a maillog line
                               matches REGEX (re.search)
    expect-no-log: REGEX       after the dialog (and the expect-log lines
                               before it): no maillog line matches REGEX

In `>` and `>raw` TEXT these escapes are expanded: \\r \\n \\t \\\\ \\xHH
(one byte) and \\[N]C (the character C repeated N times, for long lines).
Write a trailing space as \\x20 (editors strip them).
Everything else is sent as UTF-8. The connection is opened when the first
`>`/`<` line needs it. The server's replies must end in CRLF. When the dialog
is over, any reply the script did not expect is a failure.

Expected reply lines are compared after the deliberate differences of
DESIGN.md section 1 are applied for SUBJECT=rostfix (`ESMTP Postfix` in the
banner becomes `ESMTP Rostfix`). Cases that depend on
smtpd_forbid_bare_newline say its value with a `config:` line, because
Rostfix's default (normalize) differs from Postfix 3.7's (no).

SUBJECT=rostfix (default) runs target/release/postfix (or $ROSTFIX_BIN/postfix);
SUBJECT=postfix runs Debian's Postfix (as root). --record (SUBJECT=postfix
only) rewrites the `<` lines of each case from what Postfix answered: a run
of consecutive `<`/`<~` lines stands for as many replies as it has final
lines (a line that is not `NNN-...`), so write one placeholder `< 250 x` per
reply you expect and let --record fill in the multi-line texts; `<~` lines
that still match are kept, and a reply with a queue ID is written as a `<~`
line with `[0-9A-F]+` in its place. Replies already on their way when the
group is complete are added to it. Check what --record wrote: it records,
it does not judge.

Usage: run.py [--record] [--list] [--keep|--keep-all] [-j N] [-v] [CASE ...]
  CASE is a case name (file name without .dialog) or a prefix ending in '*'.
  --keep keeps the temporary directory of failing cases and prints it;
  --keep-all keeps it for every case.
  -v prints every case with its time.
  ROSTFIX_BIN=DIR takes Rostfix's commands from DIR (default target/release).
"""

import concurrent.futures
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CASES = os.path.join(HERE, "cases")

REPLY_TIMEOUT = 15.0      # seconds to wait for one expected reply line
CHECK_TIMEOUT = 10.0      # seconds for expect-maildir / expect-log
QUIET = 0.5               # seconds of silence that end "unexpected extra replies"

USERS = ("alice", "bob")

# After common.private_main_cf().
BASE_MAIN_CF = """\
myhostname = mail.example.test
mydomain = example.test
mydestination = $myhostname, localhost.$mydomain, localhost
mynetworks = 127.0.0.1/32
relayhost = [127.0.0.1]:{relay_port}
alias_maps =
alias_database =
biff = no
virtual_mailbox_domains = example.test
virtual_mailbox_base = {dir}/vmail
virtual_mailbox_maps = hash:{dir}/etc/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
"""


# Deliberate differences (DESIGN.md section 1), applied to expected reply
# lines before comparing with Rostfix.
DEVIATIONS = [
    (re.compile(r"\bESMTP Postfix\b"), "ESMTP Rostfix"),
]

QUEUE_ID = re.compile(r"queued as ([0-9A-F]+)")

_port_lock = threading.Lock()
_ports_taken = set()


def free_port():
    """A loopback TCP port nobody listens on, not handed out before by this run."""
    with _port_lock:
        for _ in range(100):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            if port not in _ports_taken:
                _ports_taken.add(port)
                return port
    raise RuntimeError("no free port")


def subject_bin(subject, name):
    if subject == "postfix":
        return "/usr/sbin/" + name
    return os.path.join(os.environ.get("ROSTFIX_BIN", os.path.join(ROOT, "target", "release")), name)


# ---------------------------------------------------------------- parsing

class Item:
    def __init__(self, lineno, raw, kind, arg=None):
        self.lineno = lineno    # 1-based line number in the file
        self.raw = raw          # the line as written, without newline
        self.kind = kind
        self.arg = arg


class DialogError(Exception):
    pass


_ESCAPE = re.compile(r"\\(?:\[(\d+)\](.)|x([0-9A-Fa-f]{2})|(.))", re.S)


def unescape(text):
    def repl(m):
        if m.group(1) is not None:
            return m.group(2) * int(m.group(1))
        if m.group(3) is not None:
            byte = int(m.group(3), 16)
            # A lone surrogate becomes the raw byte again under surrogateescape.
            return chr(0xDC00 + byte) if byte >= 0x80 else chr(byte)
        c = m.group(4)
        return {"r": "\r", "n": "\n", "t": "\t", "\\": "\\"}.get(c, "\\" + c)
    return _ESCAPE.sub(repl, text).encode("utf-8", "surrogateescape")


def parse(path):
    items = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        if line.strip() == "" or line.startswith("#"):
            items.append(Item(n, raw, "comment"))
        elif line.startswith(">raw "):
            items.append(Item(n, raw, "send", unescape(line[5:])))
        elif line == ">" or line.startswith("> "):
            items.append(Item(n, raw, "send", unescape(line[2:]) + b"\r\n"))
        elif line.startswith("<~ "):
            try:
                items.append(Item(n, raw, "expect_re", re.compile(line[3:])))
            except re.error as e:
                raise DialogError(f"line {n}: bad regex: {e}")
        elif line == "<" or line.startswith("< "):
            items.append(Item(n, raw, "expect", line[2:]))
        elif line in ("close", "wait"):
            items.append(Item(n, raw, "close"))
        elif line in ("hangup", "connect"):
            items.append(Item(n, raw, line))
        elif line.startswith("sleep "):
            items.append(Item(n, raw, "sleep", float(line[6:])))
        elif re.match(r"^[a-z-]+:", line):
            key, _, value = line.partition(":")
            value = value.strip()
            if key == "config":
                if "=" not in value:
                    raise DialogError(f"line {n}: config needs name = value")
                items.append(Item(n, raw, "config", value))
            elif key == "client":
                items.append(Item(n, raw, "client", value))
            elif key == "table":
                name, _, line = value.partition(" ")
                if not line or "/" in name:
                    raise DialogError(f"line {n}: table needs NAME KEY VALUE")
                items.append(Item(n, raw, "table", (name, line)))
            elif key == "expect-maildir":
                user, count = value.split()
                items.append(Item(n, raw, "maildir", (user, int(count))))
            elif key == "expect-message":
                user, _, regex = value.partition(" ")
                items.append(Item(n, raw, "message", (user, re.compile(regex, re.M))))
            elif key == "expect-log":
                items.append(Item(n, raw, "log", re.compile(value)))
            elif key == "expect-no-log":
                items.append(Item(n, raw, "nolog", re.compile(value)))
            else:
                raise DialogError(f"line {n}: unknown directive {key!r}")
        else:
            raise DialogError(f"line {n}: cannot parse {raw!r}")
    return items


def is_final_text(text):
    """A reply line that ends its reply (not `NNN-...`)."""
    return not re.match(r"^\d{3}-", text)


def is_final_item(item):
    if item.kind == "expect":
        return is_final_text(item.arg)
    return not re.match(r"^\^?\d{3}-", item.arg.pattern)


# ---------------------------------------------------------------- instance

class Instance:
    """A private Postfix or Rostfix in a temporary directory."""

    def __init__(self, subject, tmp, configs, tables=()):
        self.subject = subject
        self.dir = tmp
        self.port = free_port()
        self.postfix = subject_bin(subject, "postfix")
        root = os.geteuid() == 0
        if root:
            owner = pwd.getpwnam("postfix")
            nobody = pwd.getpwnam("nobody")
            self.mail_owner, self.owner_uid, self.owner_gid = "postfix", owner.pw_uid, owner.pw_gid
            self.uid, self.gid = nobody.pw_uid, nobody.pw_gid
        else:
            me = pwd.getpwuid(os.getuid())
            self.mail_owner, self.owner_uid, self.owner_gid = me.pw_name, me.pw_uid, me.pw_gid
            self.uid, self.gid = me.pw_uid, me.pw_gid
        main_cf = ("# Written by tests/dialog/run.py: a private instance on loopback.\n"
                   + common.private_main_cf(tmp, self.mail_owner)
                   + BASE_MAIN_CF.format(dir=tmp, uid=self.uid, gid=self.gid, relay_port=1))
        if configs:
            main_cf += "# from the dialog\n" + "".join(c + "\n" for c in configs)
        os.chmod(tmp, 0o755)
        for d in ("etc", "queue", "data", "vmail"):
            os.mkdir(os.path.join(tmp, d), 0o755)
        if root:
            os.chown(os.path.join(tmp, "data"), self.owner_uid, self.owner_gid)
            os.chown(os.path.join(tmp, "vmail"), self.uid, self.gid)
        self.etc = os.path.join(tmp, "etc")
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(main_cf)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(common.MASTER_CF.format(port=self.port))
        with open(os.path.join(self.etc, "vmailbox"), "w") as f:
            for user in USERS:
                f.write(f"{user}@example.test {user}/Maildir/\n")
        names = ["vmailbox"]
        for name, line in tables:
            if name not in names:
                names.append(name)
            with open(os.path.join(self.etc, name), "a") as f:
                f.write(line + "\n")
        self.age_files()
        postmap = subject_bin(self.subject, "postmap")
        if not os.path.exists(postmap):
            postmap = "/usr/sbin/postmap"
        for name in names:
            self.command([postmap, "-c", self.etc, "hash:" + os.path.join(self.etc, name)])
        self.age_files()
        self.started = False
        self.start_failed = False

    def age_files(self):
        # Postfix commands pause when main.cf is younger than a second.
        past = time.time() - 3600
        for name in os.listdir(self.etc):
            p = os.path.join(self.etc, name)
            if os.path.isfile(p):
                os.utime(p, (past, past))

    def command(self, argv, timeout=60):
        env = dict(os.environ)
        env.pop("MAIL_CONFIG", None)
        env["LC_ALL"] = "C"
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, timeout=timeout, stdin=subprocess.DEVNULL)
        out = proc.stdout.decode("utf-8", "replace")
        if proc.returncode != 0:
            shown = "".join("\n    | " + l for l in out.rstrip("\n").splitlines())
            raise DialogError(f"{' '.join(argv)} exited {proc.returncode}:{shown}")
        return out

    def start(self):
        if not os.path.exists(self.postfix):
            raise DialogError(f"{self.postfix} does not exist")
        self.started = True
        try:
            self.command([self.postfix, "-c", self.etc, "start"])
        except (DialogError, subprocess.TimeoutExpired):
            self.start_failed = True
            raise
        deadline = time.time() + 10
        while not port_listening(self.port):
            if time.time() > deadline:
                raise DialogError(f"nothing listens on 127.0.0.1:{self.port} 10 s after start")
            time.sleep(0.05)

    def stop(self):
        if not self.started:
            return
        try:
            self.command([self.postfix, "-c", self.etc, "stop"], timeout=30)
        except (DialogError, subprocess.TimeoutExpired) as e:
            if self.start_failed and not os.path.exists(self.pidfile()):
                return      # nothing was started; the start error says why
            # Last resort: the master we started, by the pid it recorded.
            try:
                pid = int(open(self.pidfile()).read().split()[0])
                os.kill(pid, 9)
            except (OSError, ValueError, IndexError):
                pass
            raise DialogError(f"stop failed: {e}")

    def pidfile(self):
        return os.path.join(self.dir, "queue", "pid", "master.pid")

    def maillog(self):
        try:
            with open(os.path.join(self.dir, "maillog"), encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def maildir_new(self, user):
        d = os.path.join(self.dir, "vmail", user, "Maildir", "new")
        try:
            return sorted(os.path.join(d, n) for n in os.listdir(d))
        except FileNotFoundError:
            return []


def port_listening(port):
    """True when a socket listens on 127.0.0.1:port (or 0.0.0.0:port)."""
    try:
        with open("/proc/net/tcp") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    want = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    return any(r.split()[1] in want and r.split()[3] == "0A" for r in rows)


# ---------------------------------------------------------------- session

class Session:
    def __init__(self, source, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((source, 0))
        self.sock.settimeout(REPLY_TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def read_line(self, timeout):
        """One line including its end, b"" on end of file, None on timeout."""
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                line, self.buf = self.buf, b""
                return line
            left = deadline - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def show(line):
    """A received line for messages: text, with a note when it is not CRLF-terminated."""
    if line.endswith(b"\r\n"):
        return line[:-2].decode("utf-8", "surrogateescape")
    return line.decode("utf-8", "surrogateescape") + "   [not ended by CRLF]"


def clip(text, width=200):
    return text if len(text) <= width else text[:width] + f"... ({len(text)} characters)"


def line_text(line):
    return line[:-2].decode("utf-8", "surrogateescape") if line.endswith(b"\r\n") else None


def deviate(text, subject):
    if subject == "rostfix":
        for pattern, repl in DEVIATIONS:
            text = pattern.sub(repl, text)
    return text


class Failure(Exception):
    pass


class Runner:
    """Plays one dialog; in record mode collects the replies for each expect group."""

    def __init__(self, subject, items, inst, record):
        self.subject = subject
        self.items = items
        self.inst = inst
        self.record = record
        self.source = "127.0.0.1"
        self.session = None
        self.transcript = []          # ("C"|"S", text) for failure context
        self.recorded = {}            # index of first item of group -> list of received lines
        self.trailing = []            # replies received after the last dialog item
        self.last_dialog_index = -1

    def note(self, who, text):
        self.transcript.append((who, text))

    def connect(self):
        if self.session:
            self.session.close()
        self.session = Session(self.source, self.inst.port)
        self.note("*", f"connected from {self.source}")

    def need_session(self):
        if self.session is None:
            self.connect()
        return self.session

    def fail(self, item, msg):
        ctx = "\n".join(f"    {w} {t}" for w, t in self.transcript[-12:])
        where = f"line {item.lineno}: {item.raw}" if item else "end of dialog"
        raise Failure(f"  at {where}\n  {msg}\n  transcript (last lines):\n{ctx}")

    def run(self):
        items = self.items
        for item in items:
            if item.kind == "client":
                self.source = item.arg
        i = 0
        while i < len(items):
            item = items[i]
            k = item.kind
            if k in ("send", "expect", "expect_re", "close", "hangup", "connect", "sleep"):
                self.last_dialog_index = i
            if k == "send":
                s = self.need_session()
                self.note("C", repr(item.arg)[2:-1] if len(item.arg) < 300 else repr(item.arg[:120])[2:-1] + "...")
                try:
                    s.send(item.arg)
                except OSError as e:
                    self.fail(item, f"send failed: {e}")
                i += 1
            elif k in ("expect", "expect_re"):
                j = i
                while j < len(items) and items[j].kind in ("expect", "expect_re"):
                    j += 1
                self.last_dialog_index = j - 1
                if self.record:
                    self.record_group(i, j)
                else:
                    for n in range(i, j):
                        self.expect_one(items[n])
                i = j
            elif k == "close":
                s = self.need_session()
                line = s.read_line(REPLY_TIMEOUT)
                if line is None:
                    self.fail(item, "expected the server to close the connection, it is still open")
                if line:
                    self.note("S", show(line))
                    self.fail(item, f"expected the server to close the connection, got {show(line)!r}")
                self.note("*", "server closed")
                i += 1
            elif k == "hangup":
                if self.session:
                    self.session.close()
                    self.session = None
                self.note("*", "client hung up")
                i += 1
            elif k == "connect":
                self.connect()
                i += 1
            elif k == "sleep":
                time.sleep(item.arg)
                i += 1
            else:
                i += 1
        # Nothing more may come from the server.
        if self.session and not self.session.eof:
            while True:
                line = self.session.read_line(QUIET)
                if not line:
                    break
                self.note("S", show(line))
                if self.record:
                    self.trailing.append(line)
                else:
                    self.fail(None, f"unexpected reply after the end of the dialog: {show(line)!r}")
        if self.session:
            self.session.close()
            self.session = None
        for item in items:
            if item.kind == "maildir":
                self.check_maildir(item)
            elif item.kind == "message":
                self.check_message(item)
            elif item.kind == "log":
                self.check_log(item)
            elif item.kind == "nolog":
                time.sleep(0.5)
                for line in self.inst.maillog():
                    if item.arg.search(line):
                        self.fail(item, f"maillog has the line {line!r}")

    def check_maildir(self, item):
        user, count = item.arg
        deadline = time.time() + CHECK_TIMEOUT
        while True:
            files = self.inst.maildir_new(user)
            if len(files) == count:
                return
            if time.time() > deadline:
                self.fail(item, f"{user}'s Maildir/new holds {len(files)} files, not {count}")
            time.sleep(0.1)

    def check_message(self, item):
        user, regex = item.arg
        deadline = time.time() + CHECK_TIMEOUT
        while True:
            texts = []
            for path in self.inst.maildir_new(user):
                with open(path, "rb") as f:
                    texts.append(f.read().decode("utf-8", "surrogateescape"))
            if any(regex.search(t) for t in texts):
                return
            if time.time() > deadline:
                shown = "\n".join("    | " + clip(l) for t in texts[:1] for l in t.splitlines()[:40])
                self.fail(item, f"no message of {user} matches {regex.pattern!r}"
                          + (f"; the first is:\n{shown}" if texts else "; there is none"))
            time.sleep(0.1)

    def check_log(self, item):
        deadline = time.time() + CHECK_TIMEOUT
        while True:
            lines = self.inst.maillog()
            if any(item.arg.search(l) for l in lines):
                return
            if time.time() > deadline:
                shown = "\n".join("    | " + clip(l) for l in lines[-15:])
                self.fail(item, f"no maillog line matches; the last lines are:\n{shown}")
            time.sleep(0.1)

    def expect_one(self, item):
        s = self.need_session()
        line = s.read_line(REPLY_TIMEOUT)
        if line is None:
            self.fail(item, f"no reply within {REPLY_TIMEOUT:.0f} s")
        if line == b"":
            self.fail(item, "the server closed the connection")
        self.note("S", show(line))
        text = line_text(line)
        if text is None:
            self.fail(item, f"reply line not ended by CRLF: {line!r}")
        if item.kind == "expect":
            want = deviate(item.arg, self.subject)
            if text != want:
                self.fail(item, f"expected {want!r}\n  got      {text!r}")
        else:
            pattern = item.arg
            if self.subject != "postfix":
                pattern = re.compile(deviate(pattern.pattern, self.subject))
            if not pattern.fullmatch(text):
                self.fail(item, f"expected a line matching {pattern.pattern!r}\n  got {text!r}")

    def record_group(self, i, j):
        s = self.need_session()
        want_finals = sum(1 for n in range(i, j) if is_final_item(self.items[n]))
        got = []
        finals = 0
        while finals < want_finals:
            line = s.read_line(REPLY_TIMEOUT)
            if not line:
                break
            self.note("S", show(line))
            got.append(line)
            if is_final_text(line.decode("latin-1")):
                finals += 1
        # Replies that are already on their way belong to this group too,
        # unless the script expects more right after.
        if j >= len(self.items) or self.items[j].kind not in ("sleep",):
            while not s.eof:
                line = s.read_line(QUIET)
                if not line:
                    break
                self.note("S", show(line))
                got.append(line)
        self.recorded[i] = (j, got)


def pat_escape(text):
    """re.escape, but readable: only the characters that are special in a regex."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", text)


def split_replies(lines, final):
    replies, cur = [], []
    for x in lines:
        cur.append(x)
        if final(x):
            replies.append(cur)
            cur = []
    if cur:
        replies.append(cur)
    return replies


def rewrite(items, recorded, trailing, last_dialog_index):
    """The dialog file text with its expect groups replaced by what was received."""
    out = []
    i = 0

    def received(line):
        text = line_text(line)
        if text is None:
            text = line.decode("utf-8", "surrogateescape").rstrip("\n")
        return text

    def expectation(line):
        # Queue IDs differ from run to run: record them as a pattern.
        text = received(line)
        m = QUEUE_ID.search(text)
        if m:
            return "<~ " + pat_escape(text[:m.start(1)]) + "[0-9A-F]+" + pat_escape(text[m.end(1):])
        return "< " + text

    while i < len(items):
        if i in recorded:
            j, got = recorded[i]
            old = items[i:j]
            want = split_replies(old, is_final_item)
            have = split_replies(got, lambda l: is_final_text(l.decode("latin-1")))
            if len(want) == len(have):
                pairs = zip(want, have)
            else:
                pairs = [(old, got)]
            for w, h in pairs:
                if len(w) == len(h):
                    for it, line in zip(w, h):
                        text = received(line)
                        if it.kind == "expect_re" and it.arg.fullmatch(text):
                            out.append(it.raw)
                        else:
                            out.append(expectation(line))
                else:
                    out.extend(expectation(line) for line in h)
            i = j
            if i - 1 == last_dialog_index:
                out.extend(expectation(line) for line in trailing)
            continue
        out.append(items[i].raw)
        if i == last_dialog_index and trailing:
            out.extend(expectation(line) for line in trailing)
        i += 1
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- driver

def run_case(subject, name, path, record, keep):
    """(ok, message, new_text_or_None, seconds)"""
    t0 = time.time()
    ok, msg, new_text = run_case_timed(subject, name, path, record, keep)
    return ok, msg, new_text, time.time() - t0


def run_case_timed(subject, name, path, record, keep):
    try:
        items = parse(path)
    except (DialogError, ValueError, re.error) as e:
        return False, f"  {os.path.basename(path)}: {e}", None
    configs = [it.arg for it in items if it.kind == "config"]
    tmp = tempfile.mkdtemp(prefix="dialog-")
    inst = None
    ok = True
    msg = ""
    new_text = None
    try:
        inst = Instance(subject, tmp, configs,
                        [it.arg for it in items if it.kind == "table"])
        inst.start()
        runner = Runner(subject, items, inst, record)
        try:
            runner.run()
        except Failure as e:
            ok, msg = False, str(e)
        except OSError as e:
            ok, msg = False, f"  socket error: {e}"
        except Exception:
            import traceback
            ok, msg = False, "  " + traceback.format_exc().replace("\n", "\n  ")
        if record:
            new_text = rewrite(items, runner.recorded, runner.trailing, runner.last_dialog_index)
    except (DialogError, subprocess.TimeoutExpired, OSError) as e:
        ok, msg = False, f"  {e}"
    finally:
        if inst is not None:
            try:
                inst.stop()
            except DialogError as e:
                ok, msg = False, (msg + "\n" if msg else "") + f"  {e}"
        if keep == "all" or (not ok and keep):
            msg += f"\n  kept {tmp}"
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return ok, msg, new_text


def cases(selectors):
    found = []
    for f in sorted(os.listdir(CASES)):
        if not f.endswith(".dialog"):
            continue
        name = f[:-len(".dialog")]
        if not selectors or any(name == s or (s.endswith("*") and name.startswith(s[:-1]))
                                for s in selectors):
            found.append((name, os.path.join(CASES, f)))
    return found


def main(argv):
    record = "--record" in argv
    listing = "--list" in argv
    keep = "all" if "--keep-all" in argv else "--keep" in argv
    verbose = "-v" in argv
    jobs = 4
    selectors = []
    args = iter(argv)
    for a in args:
        if a == "-j":
            jobs = int(next(args))
        elif a.startswith("-j") and a[2:].isdigit():
            jobs = int(a[2:])
        elif not a.startswith("-"):
            selectors.append(a)
    subject = os.environ.get("SUBJECT", "rostfix")
    if subject not in ("postfix", "rostfix"):
        sys.exit("SUBJECT must be postfix or rostfix")
    if record and subject != "postfix":
        sys.exit("--record records real Postfix: run with SUBJECT=postfix")
    if subject == "postfix" and os.geteuid() != 0:
        sys.exit("SUBJECT=postfix needs root (postfix start)")
    found = cases(selectors)
    if listing:
        for name, _ in found:
            print(name)
        return 0
    known = known_failures() if subject == "rostfix" else {}
    passed = failed = skipped = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = []
        for name, path in found:
            futures.append((name, path, pool.submit(run_case, subject, name, path, record, keep)))
        for name, path, fut in futures:
            ok, msg, new_text, seconds = fut.result()
            if record and new_text is not None:
                old = open(path, encoding="utf-8").read()
                if new_text != old:
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(new_text)
                    print("recorded", name)
            if ok:
                passed += 1
                if verbose or (keep == "all" and msg):
                    print(f"ok {name} ({seconds:.1f} s) {msg.strip()}".rstrip())
                if name in known:
                    print(f"note: {name} passes now: take it out of KNOWN_FAILURES")
            elif name in known:
                skipped += 1
                if verbose:
                    print(f"known failure {name}: {known[name]}")
            else:
                failed += 1
                print(f"FAIL {name}" + (f" ({seconds:.1f} s)" if verbose else ""))
                print(msg)
    tail = f", {skipped} skipped" if skipped else ""
    print(f"dialog ({subject}): {passed} passed, {failed} failed{tail}")
    return 1 if failed else 0


def known_failures():
    """Dialogs Rostfix does not pass yet (KNOWN_FAILURES: `name  reason`),
    reported as skipped so that CI holds everything else to account."""
    path = os.path.join(HERE, "KNOWN_FAILURES")
    out = {}
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, why = line.partition(" ")
                out[name] = why.strip()
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
