#!/usr/bin/env python3
"""Delivery runner: what ends up in the mailboxes and the log, for Rostfix
and real Postfix alike.

A case is a directory tests/delivery/cases/<name>/ holding

    main.cf     lines added to BASE_MAIN_CF (`@ETC@` stands for the
                instance's configuration directory, `@TMP@` for its
                temporary directory, `@NEXTHOP_PORT@` for the nexthop
                server's port); `#` comments say what the case shows
    send        the messages, as SMTP would carry them (format below)
    expected    what Postfix did, written by --record (do not edit by hand)
    expected.rostfix
                for a deliberate difference DEVIATIONS cannot express:
                Rostfix's expected text, derived by hand from Postfix's
                (its first lines say what differs and why)
    master.cf   optional: appended to the generated master.cf, with the
                same replacements (pipe, lmtp, tlsmgr services)
    nexthop     optional: start the nexthop server (below)
    any other   a lookup table source (or a .forward file, or a script),
    file        copied to TMP/etc/<file> with the same replacements; it is
                built with the subject's own postmap (postalias for a file
                named `aliases`) when main.cf names it
                as hash:/lmdb:/cdb:/btree:/dbm: (a `vmailbox` file replaces
                the base one)

The nexthop server is where relayed mail goes: aiosmtpd (Debian's
python3-aiosmtpd) in a thread of the runner, started before the instance
on a free 127.0.0.1 port, greeting `220 nexthop.example ESMTP nexthop`,
answering EHLO with PIPELINING, SIZE 10240000, (STARTTLS), (AUTH PLAIN
LOGIN), ENHANCEDSTATUSCODES, 8BITMIME, DSN (as a Postfix smtpd would),
accepting every MAIL (250 2.1.0 Ok), RCPT (250 2.1.5 Ok) and message
(250 2.0.0 Ok: queued as NEXTHOP) unless its file says otherwise. Lines
of the `nexthop` file (`#` comments):

    rcpt ADDRESS: CODE TEXT [once]  the reply to RCPT TO:<ADDRESS>;
                                    `once`: only the first time, 250 after
    rcpt: / mail: / data: CODE TEXT [once]
                                    the reply to every RCPT / to MAIL / at
                                    the end of DATA
    data ADDRESS: CODE TEXT [once]  LMTP: that recipient's reply after DATA
                                    (the others get 250 2.0.0 <rcpt> Ok)
    greeting: CODE TEXT             instead of the 220 greeting
    starttls                        offer STARTTLS (a self-signed
                                    certificate for nexthop.example that
                                    the openssl command makes in TMP)
    auth USER PASSWORD              offer AUTH PLAIN LOGIN (with starttls
                                    only after TLS); only USER PASSWORD
                                    is accepted (535 5.7.8 otherwise)
    without KEYWORD...              leave these out of the EHLO reply
    lmtp unix                       an LMTP server on TMP/lmtp.sock (mode
                                    0666) instead of TCP
    closed                          no server: nothing listens on the port

For every case the runner builds a fresh private mail system in a
temporary directory TMP (TMP/etc/main.cf and master.cf, TMP/queue,
TMP/data, TMP/vmail = virtual_mailbox_base, TMP/maillog = maillog_file),
starts it with `postfix -c TMP/etc start`, sends the messages with
Python's smtplib (each in its own session, EHLO client.example), waits
after each message until the mail system has settled (nothing in
maildrop/, incoming/ or active/ and the maillog quiet for a moment;
bounded, SETTLE_TIMEOUT), stops it, and writes down what a user would
check, normalized so that one expected text holds for both subjects:

    == smtp     the reply to MAIL, each RCPT and DATA (or that the session
                ended before DATA because no recipient was accepted)
    == log      maillog lines with `to=<...>` (one per recipient delivery
                attempt) and the bounce daemon's `... notification: ID`
                lines, and the smtp client's `... TLS connection
                established to ...` lines (smtp_tls_loglevel >= 1):
                program without pid, queue IDs as Q1, Q2... (in the
                order the maillog first names them), delays as D; grouped
                by queue ID, sorted inside a group (parallel deliveries
                finish in any order)
    == nexthop  (cases with a nexthop file) each session the server saw,
                in connection order: `session N`, then the client's
                commands as it sent them (EHLO/HELO/LHLO, STARTTLS, `AUTH
                MECHANISM USER` with ` (refused)` when the password was
                wrong, MAIL and RCPT with their parameters, DATA, RSET,
                NOOP, QUIT, or `(connection closed without QUIT)`); after
                DATA the message as received, each line after `| `,
                normalized as delivered files are. A MAIL's `SIZE=` is
                shown as `SIZE=LEN` when it is the length of the content
                that followed (CRLF line ends, after dot-unstuffing),
                `SIZE=LEN+n`/`LEN-n` when it differs by n, `SIZE=N` when
                no content followed. The next hop's port, which is new
                every run, is PORT everywhere in the document
                (relay=127.0.0.1[127.0.0.1]:PORT in log lines).
    == tree     every directory and file under virtual_mailbox_base with
                its mode and owner (`vmail`: the virtual_uid_maps /
                virtual_gid_maps user); Maildir file names shown as
                <maildir-name> once they have the shape time.VdevIino.Mmicros.host
    == file P   each delivered file, with the path of TMP as @TMP@ (here
                and in log lines), queue IDs, dates (RFC 5322 and
                the mbox `From ` line's ctime form), the timestamp of
                Message-Ids Postfix makes and MIME boundaries replaced.
                A delivery status notification (Return-Path <>, a
                multipart/report) is shown as its headers, the
                `<address>: reason` lines of its text part, its
                message/delivery-status part, and the returned message or
                headers; the prose of the text part is not compared.

The `send` file (blank lines and `#` lines outside DATA are ignored):

    EHLO name                   optional, default client.example
    MAIL FROM:<addr> [PARAM...]
    RCPT TO:<addr> [PARAM...]   one or more
    DATA
    message lines, sent with CRLF line ends (smtplib dot-stuffs them)
    .                           ends the message; another MAIL FROM may follow
    FLUSH                       the subject's `postqueue -c TMP/etc -f`, then
                                a wait until something was delivered (the
                                queue busy or the maillog growing) and
                                settled: a deferred message's retry (the
                                smtp section has a line `FLUSH (postqueue -f)`)
    FLUSH SITE                  the same with `postqueue -s SITE` (fast flush
                                of one destination; the line says
                                `FLUSH SITE (postqueue -s SITE)` and the
                                command's exit status and output)

or a local submission, run as the runner's user (root) with
MAIL_CONFIG=TMP/etc, its standard input given line by line up to a line
`EOF` (CRLF line ends for `-bs`, else LF), its exit status and output
recorded in the smtp section:

    SENDMAIL ARGS...            the subject's sendmail -C TMP/etc ARGS
    MAIL ARGS...                Debian's mail(1) (bsd-mailx) with a mailrc
                                that names the subject's sendmail

Deliberate differences (DESIGN.md section 1) are applied to the expected
text for SUBJECT=rostfix: `(Postfix)` after `by HOST` in Received headers
becomes `(Rostfix)`, `ESMTP Postfix` in a banner `ESMTP Rostfix`, and a
notification's prose, where one is shown whole, Rostfix's own words.

Usage: run.py [--record] [--list] [--keep|--keep-all] [-j N] [-v] [CASE ...]
  SUBJECT=postfix (root) runs Debian's Postfix; default SUBJECT=rostfix runs
  target/release (or $ROSTFIX_BIN). --record (SUBJECT=postfix only) writes
  each case's `expected` from what Postfix did: it records, it does not
  judge, so read what it wrote. CASE is a case name or a prefix ending
  in '*'. --keep keeps TMP of failing cases, --keep-all of every case.
  KNOWN_FAILURES lists cases Rostfix does not pass yet (reported, not failed).
"""

import concurrent.futures
import difflib
import email
import os
import pwd
import re
import shlex
import shutil
import smtplib
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")

SETTLE_TIMEOUT = 10.0   # seconds one message may take to settle
QUIET = 0.4             # seconds without maillog growth that count as settled
RECHECK = 2.0           # seconds a mismatch is looked at again (late log lines)

# After common.private_main_cf().
BASE_MAIN_CF = """\
myhostname = mail.example.test
mydomain = example.test
mydestination = localhost
mynetworks = 127.0.0.1/32
relayhost = [127.0.0.1]:1
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

# alice, bob and sender have Maildirs, dave an mbox file (only the mbox
# cases write to dave, so that the others do not depend on mbox support).
# Postfix's virtual(8) creates missing Maildir directories but not the
# directory of an mbox file (its dotlock cannot be made: deferred), so
# dave's is directly in virtual_mailbox_base, which the runner makes and
# gives to the vmail user.
BASE_VMAILBOX = """\
alice@example.test     example.test/alice/
bob@example.test       example.test/bob/
dave@example.test      dave
sender@example.test    example.test/sender/
"""


CASE_FILES = {"main.cf", "master.cf", "nexthop", "send", "expected", "expected.rostfix",
              "README", "NOTES"}
INDEXED = ("hash", "lmdb", "cdb", "btree", "dbm")

# Deliberate differences, applied to the expected text for Rostfix.
DEVIATIONS = [
    (re.compile(r"(\bby \S+) \(Postfix\)"), r"\1 (Rostfix)"),
    (re.compile(r"(\bby \S+) \(Postfix, from userid"), r"\1 (Rostfix, from userid"),
    (re.compile(r"^(  stdout: 220 \S+ ESMTP) Postfix$", re.M), r"\1 Rostfix"),
    # A notification's prose is Rostfix's own words (where a DSN is shown
    # whole, as inside a double bounce).
    (re.compile(r"I'm sorry to have to inform you that your message could not\n"
                r"be delivered to one or more recipients\. It's attached below\.\n\n"
                r"For further assistance, please send mail to postmaster\.\n\n"
                r"If you do so, please include this problem report\. You can\n"
                r"delete your own text from the attached returned message\.\n\n"
                r" +The mail system\n"),
     "Your message could not be delivered to one or more of its\n"
     "recipients; the reasons follow, and the message is returned\n"
     "below. The postmaster of this site can help: please include\n"
     "this report if you write.\n"),
]

MAILDIR_NAME = re.compile(r"\d+\.V[0-9a-f]+I[0-9a-f]+M\d+\.[^/:]+")
LOG_LINE = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ (\S+?)\[\d+\]: (.*)$")
LOG_QUEUE_ID = re.compile(r"^([0-9A-F]{6,}): ")
NOTIFICATION_ID = re.compile(r"notification: ([0-9A-F]{6,})$")
QUEUED_AS = re.compile(r"queued as ([0-9A-F]{6,})")
DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
RFC5322_DATE = re.compile(DAY + r", +\d{1,2} " + MONTH + r" \d{4} \d\d:\d\d:\d\d [+-]\d{4}"
                          r"(?: \([A-Za-z0-9+-]+\))?")
CTIME_DATE = re.compile(DAY + " " + MONTH + r" [ \d]\d \d\d:\d\d:\d\d \d{4}")
TLS_ESTABLISHED = re.compile(r"\bTLS connection established to ")
MESSAGE_ID_STAMP = re.compile(r"<\d{14}\.(Q\d+)@")


class CaseError(Exception):
    pass


_port_lock = threading.Lock()
_ports_taken = set()


def free_port():
    """common.free_port(), never the same port twice in this run."""
    with _port_lock:
        while True:
            port = common.free_port()
            if port not in _ports_taken:
                _ports_taken.add(port)
                return port


# ---------------------------------------------------------------- the case

class Message:
    def __init__(self):
        self.ehlo = "client.example"
        self.sender = None
        self.sender_options = []
        self.recipients = []      # (address, [options])
        self.data = None


class Flush:
    """A `FLUSH` step: the subject's postqueue -f (or -s site)."""

    def __init__(self, site=None):
        self.site = site


class Command:
    """A local submission: the subject's sendmail (or Debian's mail(1)
    set to use it) run as root with `args` and `stdin`."""

    def __init__(self, program, args):
        self.program = program    # "sendmail" or "mail"
        self.args = args
        self.stdin = None


def parse_send(path):
    messages = []
    cur = Message()
    data = None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    command = None
    for n, line in enumerate(lines, 1):
        if command is not None:
            if line == "EOF":
                command.stdin = "".join(l + "\n" for l in data)
                messages.append(command)
                command, data = None, None
            else:
                data.append(line)
            continue
        if data is not None:
            if line == ".":
                cur.data = "\n".join(data) + "\n"
                messages.append(cur)
                cur, data = Message(), None
            else:
                data.append(line)
            continue
        if not line.strip() or line.startswith("#"):
            continue
        fm = re.match(r"FLUSH(?:\s+(\S+))?\s*$", line)
        if fm and cur.sender is None:
            messages.append(Flush(fm.group(1)))
            continue
        m = re.match(r"(?i)(EHLO|MAIL FROM:|RCPT TO:)\s*(.*)$", line)
        cm = re.match(r"(SENDMAIL|MAIL)(?:\s+(.*))?$", line)
        if cm and cur.sender is None and not re.match(r"(?i)MAIL FROM:", line):
            command, data = Command(cm.group(1).lower(), shlex.split(cm.group(2) or "")), []
        elif line.upper() == "DATA":
            if cur.sender is None or not cur.recipients:
                raise CaseError(f"{path}:{n}: DATA before MAIL FROM and RCPT TO")
            data = []
        elif m and m.group(1).upper() == "EHLO":
            cur.ehlo = m.group(2).strip()
        elif m:
            am = re.match(r"<([^>]*)>\s*(.*)$", m.group(2))
            if not am:
                raise CaseError(f"{path}:{n}: address must be in <>: {line!r}")
            address, options = am.group(1), am.group(2).split()
            if m.group(1).upper() == "MAIL FROM:":
                cur.sender, cur.sender_options = address, options
            else:
                cur.recipients.append((address, options))
        else:
            raise CaseError(f"{path}:{n}: cannot parse {line!r}")
    if command is not None:
        raise CaseError(f"{path}: {command.program} input not ended by an EOF line")
    if data is not None:
        raise CaseError(f"{path}: message not ended by a '.' line")
    if cur.sender is not None:
        raise CaseError(f"{path}: MAIL FROM without DATA at the end")
    if not messages:
        raise CaseError(f"{path}: no message")
    return messages


# ---------------------------------------------------------------- instance

class Instance:
    """A private Postfix or Rostfix in a temporary directory."""

    def __init__(self, subject, bin_dir, tmp, case_dir, nexthop=None):
        self.subject = subject
        self.bin = bin_dir
        self.dir = tmp
        self.etc = os.path.join(tmp, "etc")
        self.queue = os.path.join(tmp, "queue")
        self.vmail = os.path.join(tmp, "vmail")
        self.port = free_port()
        self.mail_owner, self.uid, self.gid = common.users()
        self.started = False
        root = os.geteuid() == 0
        os.chmod(tmp, 0o755)
        for d in ("etc", "queue", "data", "vmail"):
            os.mkdir(os.path.join(tmp, d), 0o755)
        if root:
            owner = pwd.getpwnam(self.mail_owner)
            os.chown(os.path.join(tmp, "data"), owner.pw_uid, owner.pw_gid)
            os.chown(self.vmail, self.uid, self.gid)
        def subst(text):
            text = text.replace("@ETC@", self.etc).replace("@TMP@", tmp)
            if nexthop is not None and nexthop.port is not None:
                text = text.replace("@NEXTHOP_PORT@", str(nexthop.port))
            return text

        extra = ""
        extra_path = os.path.join(case_dir, "main.cf")
        if os.path.exists(extra_path):
            extra = subst(open(extra_path, encoding="utf-8").read())
        base = ("# Written by tests/delivery/run.py: a private instance on loopback.\n"
                + common.private_main_cf(tmp, self.mail_owner)
                + BASE_MAIN_CF.format(dir=tmp, uid=self.uid, gid=self.gid))
        # A parameter the case sets replaces the base's line (no
        # "overriding earlier entry" warnings).
        overridden = set(re.findall(r"^([a-z0-9_]+)\s*=", extra, re.M))
        base = "".join(l for l in base.splitlines(True)
                       if not (m := re.match(r"([a-z0-9_]+)\s*=", l)) or m.group(1) not in overridden)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(base)
            if extra:
                f.write("# from the case\n" + extra)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(common.MASTER_CF.format(port=self.port))
            master_path = os.path.join(case_dir, "master.cf")
            if os.path.exists(master_path):
                f.write("# from the case\n" + subst(open(master_path, encoding="utf-8").read()))
        with open(os.path.join(self.etc, "vmailbox"), "w") as f:
            f.write(BASE_VMAILBOX)
        tables = {"vmailbox": "hash"}
        for name in sorted(os.listdir(case_dir)):
            if name in CASE_FILES or name.startswith(".") or name.endswith("~"):
                continue
            with open(os.path.join(case_dir, name), encoding="utf-8") as f:
                text = subst(f.read())
            with open(os.path.join(self.etc, name), "w", encoding="utf-8") as f:
                f.write(text)
            m = re.search(r"\b(" + "|".join(INDEXED) + r"):" + re.escape(self.etc) + "/"
                          + re.escape(name) + r"(?![\w.-])", extra)
            if m:
                tables[name] = m.group(1)
        self.age_files()
        for name, kind in tables.items():
            # An `aliases` file is in aliases(5) form: postalias builds it.
            builder = "postalias" if name == "aliases" else "postmap"
            self.command(builder, "-c", self.etc, f"{kind}:{self.etc}/{name}")
        self.age_files()

    def age_files(self):
        # Postfix commands pause when main.cf is younger than a second.
        past = time.time() - 3600
        for name in os.listdir(self.etc):
            os.utime(os.path.join(self.etc, name), (past, past))

    def command(self, name, *args, timeout=60):
        path = os.path.join(self.bin, name)
        if not os.path.exists(path):
            raise CaseError(f"{path} does not exist")
        env = dict(os.environ)
        env.pop("MAIL_CONFIG", None)
        env["LC_ALL"] = "C"
        proc = subprocess.run([path, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, timeout=timeout, stdin=subprocess.DEVNULL)
        out = proc.stdout.decode("utf-8", "replace")
        if proc.returncode != 0:
            both = out + proc.stderr.decode("utf-8", "replace")
            shown = "".join("\n    | " + l for l in both.rstrip("\n").splitlines())
            raise CaseError(f"{name} {' '.join(args)} exited {proc.returncode}:{shown}")
        return out

    def submit(self, c):
        """Runs a Command; its exit status and output, as lines."""
        env = dict(os.environ, LC_ALL="C", MAIL_CONFIG=self.etc)
        if c.program == "sendmail":
            argv = [os.path.join(self.bin, "sendmail"), "-C", self.etc, *c.args]
        else:
            # Debian's bsd-mailx, told which sendmail to run.
            rc = os.path.join(self.dir, "mailrc")
            with open(rc, "w") as f:
                f.write(f"set sendmail={os.path.join(self.bin, 'sendmail')}\n")
            env["MAILRC"] = rc
            argv = ["bsd-mailx", "-n", *c.args]
        text = c.stdin
        if "-bs" in c.args:
            text = text.replace("\n", "\r\n")
        proc = subprocess.run(argv, input=text.encode("utf-8"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, timeout=60)
        shown = " ".join([c.program, *c.args])
        out = [f"{shown}: exit {proc.returncode}"]
        for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            for l in stream.decode("utf-8", "replace").splitlines():
                out.append(f"  {name}: {l.rstrip()}")
        return out

    def start(self):
        self.started = True
        self.command("postfix", "-c", self.etc, "start")
        if not common.wait_listening(self.port, 10):
            raise CaseError(f"nothing listens on 127.0.0.1:{self.port} 10 s after start")

    def stop(self):
        if not self.started:
            return
        try:
            self.command("postfix", "-c", self.etc, "stop", timeout=30)
        except (CaseError, subprocess.TimeoutExpired) as e:
            pidfile = os.path.join(self.queue, "pid", "master.pid")
            if not os.path.exists(pidfile):
                return      # nothing runs; the start error says why
            # Last resort: the master this case started, by the pid it recorded.
            try:
                os.kill(int(open(pidfile).read().split()[0]), 9)
            except (OSError, ValueError, IndexError):
                pass
            raise CaseError(f"stop failed: {e}")

    def flush(self, site=None):
        """postqueue -f (-s site), then waits until something happened
        (the queue busy or the maillog growing; at most SETTLE_TIMEOUT)
        and settled. (settled, lines of the command's status and output
        when it failed)"""
        before = len(self.maillog())
        args = ["-s", site] if site else ["-f"]
        proc = subprocess.run([os.path.join(self.bin, "postqueue"), "-c", self.etc, *args],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=dict(os.environ, LC_ALL="C"), timeout=60)
        out = []
        if proc.returncode != 0:
            out.append(f"  exit {proc.returncode}")
            out += ["  " + l for l in proc.stdout.decode("utf-8", "replace").splitlines()]
            return self.settle(), out
        deadline = time.time() + SETTLE_TIMEOUT
        while (not self.queue_busy() and len(self.maillog()) == before
               and time.time() < deadline):
            time.sleep(0.05)
        return self.settle(), []

    def maillog(self):
        try:
            with open(os.path.join(self.dir, "maillog"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def queue_busy(self):
        for sub in ("maildrop", "incoming", "active"):
            for _, _, files in os.walk(os.path.join(self.queue, sub)):
                # Dot files are no messages (Rostfix's pool of empty queue files).
                if any(not f.startswith(".") for f in files):
                    return True
        return False

    def settle(self):
        """Waits until nothing is in flight and the maillog is quiet;
        False after SETTLE_TIMEOUT."""
        deadline = time.time() + SETTLE_TIMEOUT
        last, since = None, time.time()
        while True:
            size = len(self.maillog())
            if size != last:
                last, since = size, time.time()
            if not self.queue_busy() and time.time() - since >= QUIET:
                return True
            if time.time() > deadline:
                return False
            time.sleep(0.05)


# ---------------------------------------------------------------- sending

def reply_text(code, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} " + " / ".join(text.splitlines())


def send(port, msg):
    """The SMTP replies of one session, as lines."""
    out = []
    with smtplib.SMTP("127.0.0.1", port, local_hostname=msg.ehlo, timeout=30) as c:
        code, _ = c.ehlo()
        if code != 250:
            out.append(f"EHLO {msg.ehlo}: {code}")
            return out
        code, text = c.mail(msg.sender, msg.sender_options)
        out.append(f"MAIL FROM:<{msg.sender}> {' '.join(msg.sender_options)}".rstrip()
                   + ": " + reply_text(code, text))
        if code != 250:
            return out
        accepted = 0
        for address, options in msg.recipients:
            code, text = c.rcpt(address, options)
            out.append(f"RCPT TO:<{address}> {' '.join(options)}".rstrip()
                       + ": " + reply_text(code, text))
            accepted += code in (250, 251)
        if not accepted:
            out.append("(no recipient accepted: no DATA)")
            return out
        try:
            # smtplib leaves the line ends of bytes alone: CRLF them here.
            code, text = c.data(msg.data.replace("\n", "\r\n").encode("utf-8"))
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
        out.append("DATA: " + reply_text(code, text))
    return out


# ---------------------------------------------------------------- next hop

_aiosmtpd_lock = threading.Lock()


def import_aiosmtpd():
    """aiosmtpd, from Debian's python3-aiosmtpd when the python3 running
    this is another one (pyenv): its dist-packages are pure Python."""
    with _aiosmtpd_lock:
        try:
            import aiosmtpd.smtp  # noqa: F401
        except ImportError:
            debian = "/usr/lib/python3/dist-packages"
            if debian not in sys.path and os.path.isdir(os.path.join(debian, "aiosmtpd")):
                sys.path.append(debian)
            try:
                import aiosmtpd.smtp  # noqa: F401,F811
            except ImportError as e:
                raise CaseError(f"the nexthop server needs aiosmtpd ({e}): run scripts/deps")
        import aiosmtpd.controller
        import aiosmtpd.lmtp
        return aiosmtpd


class NexthopConfig:
    """A case's `nexthop` file."""

    def __init__(self, path):
        self.replies = {}         # (command, address or None) -> [reply, once]
        self.greeting = None
        self.starttls = False
        self.auth = None          # (user, password)
        self.lmtp = False
        self.closed = False
        self.without = set()      # EHLO keywords not offered
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.match(r"(?i)(greeting|mail|rcpt|data)(?:\s+(\S+))?\s*:\s*(\d{3}\b.*?)(\s+once)?$",
                         line)
            words = line.split()
            if m:
                command, address, reply, once = m.groups()
                command = command.lower()
                if command == "greeting":
                    self.greeting = reply
                else:
                    key = (command, address.strip("<>").lower() if address else None)
                    self.replies[key] = [reply, bool(once)]
            elif words == ["starttls"]:
                self.starttls = True
            elif words[0] == "auth" and len(words) == 3:
                self.auth = (words[1], words[2])
            elif words == ["lmtp", "unix"]:
                self.lmtp = True
            elif words == ["closed"]:
                self.closed = True
            elif words[0] == "without" and len(words) > 1:
                self.without |= {w.upper() for w in words[1:]}
            else:
                raise CaseError(f"{path}:{n}: cannot parse {line!r}")


class Nexthop:
    """The SMTP (or LMTP) server a case's mail goes out to: aiosmtpd in a
    thread of the runner, answering as the `nexthop` file says and
    writing down what each session brought."""

    HOSTNAME = "nexthop.example"

    def __init__(self, case_dir, tmp):
        self.config = NexthopConfig(os.path.join(case_dir, "nexthop"))
        self.tmp = tmp
        self.port = None if self.config.lmtp else free_port()
        self.socket = os.path.join(tmp, "lmtp.sock")
        self.replies = {k: list(v) for k, v in self.config.replies.items()}
        self.sessions = []        # per connection: entries, str or ("content", bytes)
        self.recording = False    # the controller's own test connection is not a session
        self.lock = threading.Lock()
        self.controller = None

    def reply(self, command, address=None):
        """The configured reply to COMMAND (for ADDRESS), or None."""
        with self.lock:
            for key in ((command, address.lower() if address else None), (command, None)):
                entry = self.replies.get(key)
                if entry and entry[0] is not None:
                    reply = entry[0]
                    if entry[1]:
                        entry[0] = None     # `once`: the default reply from now on
                    return reply
        return None

    def new_session(self):
        entries = []
        if self.recording:
            with self.lock:
                self.sessions.append(entries)
        return entries

    def tls_context(self):
        import ssl
        cert, key = (os.path.join(self.tmp, f"nexthop-{n}.pem") for n in ("cert", "key"))
        proc = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj",
             "/CN=" + self.HOSTNAME], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise CaseError("openssl req failed: " + proc.stdout.decode("utf-8", "replace"))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context

    def start(self):
        if self.config.closed:
            return
        import logging
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        lib = import_aiosmtpd()
        nexthop = self
        config = self.config

        class Recording:
            """What the SMTP/LMTP protocol objects share: one per connection."""

            def connection_made(self, transport):
                if self._original_transport is None:    # not the TLS layer of one
                    self.entries = nexthop.new_session()
                    self.quit = False
                    self.greeted = False
                super().connection_made(transport)

            def record_unread(self):
                """Lines the client sent just before it closed (a QUIT
                it did not wait to see answered): aiosmtpd cancels its
                reader at the end of the stream without handling them."""
                if getattr(self, "unread", False):
                    return
                self.unread = True
                for raw in bytes(self._reader._buffer).split(b"\n")[:-1]:
                    line = raw.rstrip(b"\r").decode("utf-8", "surrogateescape")
                    self.entries.append(line)
                    self.quit = self.quit or line.upper() == "QUIT"

            def eof_received(self):
                self.record_unread()
                return super().eof_received()

            def connection_lost(self, error):
                self.record_unread()
                if not self.quit and not getattr(self, "lost", False):
                    self.lost = True
                    self.entries.append("(connection closed without QUIT)")
                super().connection_lost(error)

            async def push(self, status):
                if not self.greeted:
                    self.greeted = True
                    status = config.greeting or status
                await super().push(status)

            async def smtp_HELO(self, arg):
                self.entries.append(f"HELO {arg}")
                await super().smtp_HELO(arg)

            async def smtp_EHLO(self, arg):
                self.entries.append(f"EHLO {arg}")
                await super().smtp_EHLO(arg)

            async def smtp_LHLO(self, arg):
                self.entries.append(f"LHLO {arg}")
                await super().smtp_LHLO(arg)

            async def smtp_STARTTLS(self, arg):
                self.entries.append("STARTTLS" + (f" {arg}" if arg else ""))
                await super().smtp_STARTTLS(arg)

            async def smtp_AUTH(self, arg):
                self.login = None
                await super().smtp_AUTH(arg)
                mechanism = (arg or "").split()[0].upper() if arg else ""
                if self.login is None:
                    self.entries.append(f"AUTH {mechanism} (no login given)")
                else:
                    self.entries.append(f"AUTH {mechanism} {self.login}"
                                        + ("" if self.session.authenticated else " (refused)"))

            async def smtp_MAIL(self, arg):
                self.entries.append(f"MAIL {arg}")
                reply = nexthop.reply("mail")
                m = re.match(r"(?i)FROM:\s*<([^>]*)>", arg or "")
                if reply is None and not m:
                    reply = "501 5.5.4 Syntax: MAIL FROM:<address>"
                if reply is None:
                    self.envelope.mail_from = m.group(1)
                    reply = "250 2.1.0 Ok"
                await self.push(reply)

            async def smtp_RCPT(self, arg):
                self.entries.append(f"RCPT {arg}")
                m = re.match(r"(?i)TO:\s*<([^>]*)>", arg or "")
                reply = nexthop.reply("rcpt", m.group(1) if m else None)
                if reply is None and not m:
                    reply = "501 5.5.4 Syntax: RCPT TO:<address>"
                if reply is None and self.envelope.mail_from is None:
                    reply = "503 5.5.1 Error: need MAIL command"
                if reply is None:
                    self.envelope.rcpt_tos.append(m.group(1))
                    reply = "250 2.1.5 Ok"
                await self.push(reply)

            async def smtp_DATA(self, arg):
                self.entries.append("DATA" + (f" {arg}" if arg else ""))
                await super().smtp_DATA(arg)

            async def smtp_RSET(self, arg):
                self.entries.append("RSET")
                await super().smtp_RSET(arg)

            async def smtp_NOOP(self, arg):
                self.entries.append("NOOP")
                await super().smtp_NOOP(arg)

            async def smtp_QUIT(self, arg):
                self.entries.append("QUIT")
                self.quit = True
                await super().smtp_QUIT(arg)

        class NexthopSMTP(Recording, lib.smtp.SMTP):
            pass

        class NexthopLMTP(Recording, lib.lmtp.LMTP):
            pass

        class Handler:
            async def handle_EHLO(self, server, session, envelope, hostname, responses):
                session.host_name = hostname
                tls = server._tls_protocol is not None
                offer = ["PIPELINING", "SIZE 10240000"]
                if config.starttls and not tls:
                    offer.append("STARTTLS")
                if config.auth and (tls or not config.starttls):
                    offer.append("AUTH PLAIN LOGIN")
                offer += ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN"]
                offer = [o for o in offer if o.split()[0] not in config.without]
                lines = [nexthop.HOSTNAME] + offer
                return [f"250-{l}" for l in lines[:-1]] + [f"250 {lines[-1]}"]

            async def handle_DATA(self, server, session, envelope):
                server.entries.append(("content", bytes(envelope.original_content)))
                if config.lmtp:
                    # One reply per accepted recipient, in RCPT order.
                    return "\r\n".join(nexthop.reply("data", r) or f"250 2.0.0 <{r}> Ok"
                                       for r in envelope.rcpt_tos)
                return nexthop.reply("data") or "250 2.0.0 Ok: queued as NEXTHOP"

        def authenticator(server, session, envelope, mechanism, auth_data):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            server.login = login
            ok = (login, password) == config.auth
            return lib.smtp.AuthResult(success=ok, handled=False, auth_data=auth_data)

        kwargs = dict(server_hostname=self.HOSTNAME, ident="ESMTP nexthop",
                      authenticator=authenticator, auth_require_tls=config.starttls,
                      tls_context=self.tls_context() if config.starttls else None)

        class Controller(lib.controller.UnixSocketController if config.lmtp
                         else lib.controller.Controller):
            def factory(self):
                return (NexthopLMTP if config.lmtp else NexthopSMTP)(self.handler,
                                                                      **self.SMTP_kwargs)

        handler = Handler()
        if config.lmtp:
            self.controller = Controller(handler, unix_socket=self.socket, **kwargs)
        else:
            self.controller = Controller(handler, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()
        if config.lmtp:
            os.chmod(self.socket, 0o666)    # lmtp(8) runs as mail_owner
        # start() has seen the greeting of its own test connection: every
        # connection from now on is the client's.
        self.recording = True

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def section(self, ids, tmp):
        """The `== nexthop` lines."""
        out = []
        with self.lock:
            sessions = [list(s) for s in self.sessions]
        for n, entries in enumerate(sessions, 1):
            out.append(f"session {n}")
            for i, entry in enumerate(entries):
                if isinstance(entry, tuple):
                    text = entry[1].decode("utf-8", "surrogateescape").replace("\r\n", "\n")
                    text = normalize_text(text, ids, tmp)
                    if text.endswith("\n"):
                        text = text[:-1]
                    else:
                        text += "\n\\ No newline at end of data"
                    out += [("| " + l).rstrip(" ") for l in text.split("\n")]
                    continue
                if entry.upper().startswith("MAIL ") and re.search(r"(?i)\bSIZE=\d+", entry):
                    # SIZE against what came: LEN = the length of the content (CRLF line ends).
                    content = None
                    for e in entries[i + 1:]:
                        if isinstance(e, tuple):
                            content = e[1]
                        if isinstance(e, tuple) or e.upper().startswith("MAIL "):
                            break
                    def size(m, content=content):
                        if not isinstance(content, bytes):
                            return "SIZE=N"
                        diff = int(m.group(1)) - len(content)
                        return "SIZE=LEN" + (f"{diff:+d}" if diff else "")
                    entry = re.sub(r"(?i)\bSIZE=(\d+)", size, entry)
                out.append(normalize_text(entry, ids, tmp))
        return out


# ---------------------------------------------------------------- normalizing

class QueueIds:
    """Queue ID -> Qn, numbered in the order the maillog first names them."""

    def __init__(self, log_text):
        self.map = {}
        for line in log_text.splitlines():
            m = LOG_LINE.match(line)
            if not m:
                continue
            body = m.group(2)
            for pattern in (LOG_QUEUE_ID, NOTIFICATION_ID):
                for qid in pattern.findall(body):
                    self.add(qid)

    def add(self, qid):
        if qid not in self.map:
            self.map[qid] = f"Q{len(self.map) + 1}"

    def sub(self, text):
        if not self.map:
            return text
        pattern = re.compile(r"(?<![0-9A-Za-z])(" + "|".join(map(re.escape, self.map))
                             + r")(?![0-9A-Za-z])")
        return pattern.sub(lambda m: self.map[m.group(1)], text)


MIME_BOUNDARY = re.compile(r"(?<![0-9A-Za-z])(Q\d+)\.\d+/")


def normalize_text(text, ids, tmp):
    text = text.replace(tmp, "@TMP@")
    text = ids.sub(text)
    # Notification boundaries (QUEUEID.EPOCH/host) outside a DSN summary.
    text = MIME_BOUNDARY.sub(r"\1.EPOCH/", text)
    text = RFC5322_DATE.sub("DATE", text)
    text = CTIME_DATE.sub("DATE", text)
    text = MESSAGE_ID_STAMP.sub(r"<TIMESTAMP.\1@", text)
    return text


def log_section(log_text, ids, inst):
    groups = {}
    for line in log_text.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        program, body = m.group(1), m.group(2)
        if not (re.match(r"[0-9A-F]{6,}: to=<", body) or NOTIFICATION_ID.search(body)
                or TLS_ESTABLISHED.search(body)):
            continue
        body = re.sub(r"\bdelay=[\d.]+", "delay=D", body)
        body = re.sub(r"\bdelays=[\d./]+", "delays=D/D/D/D", body)
        body = normalize_text(body, ids, inst.dir)
        q = re.match(r"Q(\d+)", body)
        groups.setdefault(int(q.group(1)) if q else 0, []).append(f"{program}: {body}")
    out = []
    for key in sorted(groups):
        out += sorted(groups[key])
    return out


def owner(st, inst):
    if (st.st_uid, st.st_gid) == (inst.uid, inst.gid):
        return "vmail"
    return f"{st.st_uid}:{st.st_gid}"


def shape(rel):
    parts = rel.split("/")
    if len(parts) >= 2 and parts[-2] in ("new", "cur", "tmp") and MAILDIR_NAME.fullmatch(
            parts[-1].split(":")[0]):
        parts[-1] = "<maildir-name>" + (":" + parts[-1].split(":", 1)[1]
                                        if ":" in parts[-1] else "")
    return "/".join(parts)


def split_message(text):
    """(header lines joined with their continuations, body)."""
    head, sep, body = text.partition("\n\n")
    if not sep:
        head, body = text, ""
    headers = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and headers:
            headers[-1] += "\n" + line
        else:
            headers.append(line)
    return headers, body


def header_value(headers, name):
    for h in headers:
        if h.lower().startswith(name.lower() + ":"):
            return h.split(":", 1)[1].strip()
    return None


def is_dsn(text):
    headers, _ = split_message(text)
    ctype = header_value(headers, "Content-Type") or ""
    return (header_value(headers, "Return-Path") == "<>"
            and ctype.lower().startswith("multipart/report"))


def dsn_summary(text):
    """A delivery status notification without its prose."""
    headers, body = split_message(text)
    ctype = header_value(headers, "Content-Type") or ""
    m = re.search(r'boundary="?([^";\s]+)"?', ctype, re.S)
    boundary = m.group(1) if m else None
    out = [h.replace(boundary, "BOUNDARY") if boundary else h for h in headers]
    out.append("")
    if not boundary:
        return "\n".join(out + ["[no boundary]"]) + "\n"
    parts = body.split("--" + boundary)
    for part in parts[1:]:
        if part.startswith("--"):
            break
        part = part[1:] if part.startswith("\n") else part
        pheaders, pbody = split_message(part)
        ptype = (header_value(pheaders, "Content-Type") or "text/plain").split(";")[0].strip()
        out.append("[part " + "; ".join(pheaders) + "]")
        if ptype.lower() == "text/plain":
            # The prose may differ; the `<address>: reason` lines may not.
            joined = re.sub(r"\n[ \t]+", " ", pbody)
            out += [l.rstrip() for l in joined.split("\n") if l.startswith("<")]
        else:
            out += pbody.rstrip("\n").split("\n")
    # What a program reading it sees: Python's email package.
    msg = email.message_from_string(text)
    out.append("[python email: " + " ".join(p.get_content_type() for p in msg.walk()) + "]")
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload()[1:]:
                fields = ("Final-Recipient", "Action", "Status")
                out.append("[python email: " + "; ".join(f"{k}={block[k]}" for k in fields) + "]")
    return "\n".join(out) + "\n"


def vmail_sections(inst, ids):
    tree, files = [], []
    for root, dirs, names in os.walk(inst.vmail):
        dirs.sort()
        for d in dirs:
            p = os.path.join(root, d)
            st = os.lstat(p)
            rel = os.path.relpath(p, inst.vmail)
            tree.append(f"{shape(rel)}/ {stat.S_IMODE(st.st_mode):04o} {owner(st, inst)}")
        for n in names:
            p = os.path.join(root, n)
            st = os.lstat(p)
            rel = shape(os.path.relpath(p, inst.vmail))
            tree.append(f"{rel} {stat.S_IMODE(st.st_mode):04o} {owner(st, inst)}")
            if not stat.S_ISREG(st.st_mode):
                continue
            with open(p, "rb") as f:
                text = f.read().decode("utf-8", "surrogateescape")
            text = normalize_text(text, ids, inst.dir)
            if is_dsn(text):
                rel += " (delivery status notification: its prose is not compared)"
                text = dsn_summary(text)
            files.append((rel, text))
    tree.sort()
    files.sort()
    return tree, files


def document(smtp_lines, inst, nexthop=None):
    """The normalized expected/actual text of a case."""
    log_text = inst.maillog()
    ids = QueueIds(log_text)
    for line in smtp_lines:
        for qid in QUEUED_AS.findall(line):
            ids.add(qid)
    out = ["== smtp"]
    out += [normalize_text(l, ids, inst.dir) for l in smtp_lines]
    out.append("== log")
    out += log_section(log_text, ids, inst)
    if nexthop is not None:
        out.append("== nexthop")
        out += nexthop.section(ids, inst.dir)
    tree, files = vmail_sections(inst, ids)
    out.append("== tree")
    out += tree
    text = "\n".join(out) + "\n"
    for rel, content in files:
        text += f"== file {rel}\n"
        if content and not content.endswith("\n"):
            content += "\n\\ No newline at end of file\n"
        text += content
    if nexthop is not None and nexthop.port is not None:
        # The next hop's port is new every run.
        text = re.sub(r"(?<![0-9])" + str(nexthop.port) + r"(?![0-9])", "PORT", text)
    return text


def deviate(text, subject):
    if subject == "rostfix":
        for pattern, repl in DEVIATIONS:
            text = pattern.sub(repl, text)
    return text


HEADER_COMMENT = re.compile(r"^#.*\n")


def read_expected(path):
    text = open(path, encoding="utf-8", errors="surrogateescape").read()
    while True:
        m = HEADER_COMMENT.match(text)
        if not m:
            return text
        text = text[m.end():]


# ---------------------------------------------------------------- driver

def run_case(subject, bin_dir, name, record, keep):
    """(ok, message, seconds)"""
    t0 = time.time()
    case_dir = os.path.join(CASES, name)
    tmp = tempfile.mkdtemp(prefix=f"delivery-{name}-")
    inst = nexthop = None
    ok, msg = True, ""
    try:
        messages = parse_send(os.path.join(case_dir, "send"))
        if os.path.exists(os.path.join(case_dir, "nexthop")):
            nexthop = Nexthop(case_dir, tmp)
            nexthop.start()
        inst = Instance(subject, bin_dir, tmp, case_dir, nexthop)
        inst.start()
        smtp_lines = []
        unsettled = []
        for n, m in enumerate(messages, 1):
            if isinstance(m, Flush):
                if m.site:
                    smtp_lines.append(f"FLUSH {m.site} (postqueue -s {m.site})")
                else:
                    smtp_lines.append("FLUSH (postqueue -f)")
                settled, out = inst.flush(m.site)
                smtp_lines += out
                if not settled:
                    unsettled.append(n)
                continue
            if isinstance(m, Command):
                smtp_lines += inst.submit(m)
            else:
                smtp_lines += send(inst.port, m)
            if not inst.settle():
                unsettled.append(n)
        if record:
            time.sleep(1.0)     # what is recorded is not looked at again: let late lines land
        actual = document(smtp_lines, inst, nexthop)
        note = ""
        if unsettled:
            note = (f"  message {', '.join(map(str, unsettled))}: still in maildrop/incoming/"
                    f"active or the log still growing {SETTLE_TIMEOUT:.0f} s after it was sent\n")
        if record:
            version = inst.command("postconf", "-c", inst.etc, "-h", "mail_version").strip()
            with open(os.path.join(case_dir, "expected"), "w", encoding="utf-8",
                      errors="surrogateescape") as f:
                f.write(f"# Recorded from Postfix {version} by SUBJECT=postfix "
                        f"tests/delivery/run.py --record {name}\n")
                f.write(actual)
            msg = note + "  recorded"
            ok = not unsettled
        else:
            exp_path = os.path.join(case_dir, "expected")
            # A deliberate difference too big for DEVIATIONS: Rostfix's
            # own expected text, written by hand from Postfix's (its
            # comment says what differs and why).
            own = os.path.join(case_dir, f"expected.{subject}")
            if subject != "postfix" and os.path.exists(own):
                exp_path = own
            if not os.path.exists(exp_path):
                raise CaseError("no expected file: record it with SUBJECT=postfix --record")
            expected = deviate(read_expected(exp_path), subject)
            deadline = time.time() + RECHECK
            while actual != expected and time.time() < deadline:
                time.sleep(0.2)
                actual = document(smtp_lines, inst, nexthop)
            if actual != expected:
                ok = False
                diff = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(),
                                                 "expected", "actual", lineterm="", n=2))
                if len(diff) > 80:
                    diff = diff[:80] + [f"... ({len(diff) - 80} more diff lines)"]
                msg = note + "\n".join("    " + l for l in diff)
    except (CaseError, smtplib.SMTPException, OSError, subprocess.TimeoutExpired) as e:
        ok, msg = False, f"  {type(e).__name__ if not isinstance(e, CaseError) else ''}{e}"
    except Exception:
        import traceback
        ok, msg = False, "  " + traceback.format_exc().replace("\n", "\n  ")
    finally:
        if inst is not None:
            try:
                inst.stop()
            except CaseError as e:
                ok, msg = False, (msg + "\n" if msg else "") + f"  {e}"
        if nexthop is not None:
            nexthop.stop()
        if keep == "all" or (not ok and keep):
            msg += f"\n  kept {tmp}"
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return ok, msg, time.time() - t0


def cases(selectors):
    found = []
    for name in sorted(os.listdir(CASES)):
        if not os.path.isfile(os.path.join(CASES, name, "send")):
            continue
        if not selectors or any(name == s or (s.endswith("*") and name.startswith(s[:-1]))
                                for s in selectors):
            found.append(name)
    return found


def known_failures():
    """KNOWN_FAILURES: `name  reason` per line, `#` comments."""
    path = os.path.join(HERE, "KNOWN_FAILURES")
    out = {}
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, why = line.partition(" ")
                out[name] = why.strip()
    return out


def main(argv):
    record = "--record" in argv
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
    subject, bin_dir = common.subject()
    if subject not in ("postfix", "rostfix"):
        sys.exit("SUBJECT must be postfix or rostfix")
    if record and subject != "postfix":
        sys.exit("--record records real Postfix: run with SUBJECT=postfix")
    if subject == "postfix" and os.geteuid() != 0:
        sys.exit("SUBJECT=postfix needs root (postfix start)")
    found = cases(selectors)
    if "--list" in argv:
        print("\n".join(found))
        return 0
    if selectors and not found:
        sys.exit(f"no case matches {' '.join(selectors)}")
    known = known_failures() if subject == "rostfix" else {}
    passed = failed = known_failed = 0
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [(name, pool.submit(run_case, subject, bin_dir, name, record, keep))
                   for name in found]
        for name, fut in futures:
            ok, msg, seconds = fut.result()
            timing = f" ({seconds:.1f} s)" if verbose else ""
            if record:
                print(f"{'recorded' if ok else 'FAIL'} {name}{timing}")
                if msg.strip() != "recorded":
                    print(msg)
                passed += ok
                failed += not ok
            elif ok:
                passed += 1
                if name in known:
                    print(f"passes now {name}{timing}: take it out of KNOWN_FAILURES")
                elif verbose or keep == "all":
                    print(f"ok {name}{timing} {msg.strip()}".rstrip())
            elif name in known:
                known_failed += 1
                print(f"known failure {name}{timing}: {known[name]}")
                if verbose:
                    print(msg)
            else:
                failed += 1
                print(f"FAIL {name}{timing}")
                print(msg)
    tail = f", {known_failed} known failures" if known_failed else ""
    print(f"delivery ({subject}): {passed} passed, {failed} failed{tail} "
          f"in {time.time() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
