#!/usr/bin/env python3
"""Dovecot interop: outbound delivery from the mail system into a real
Dovecot (Debian's dovecot-core, dovecot-lmtpd, dovecot-imapd), read back
over IMAP.

README: SUBJECT=postfix python3 tests/dovecot/run.py (root) checks Debian's
Postfix against the values below; plain `python3 tests/dovecot/run.py`
checks Rostfix (target/release or $ROSTFIX_BIN). Options: --keep keeps the
temporary directory of a failing scenario, -v prints the normalized
maillog lines; arguments name scenarios (lmtp, dovecot-lda, lda-tempfail).
Exits 0 with a `skip` line when Dovecot is not installed (scripts/deps
installs it); takes about 15 s.

For each scenario the script builds a temporary directory TMP holding

    TMP/dovecot.conf     a private Dovecot: base_dir TMP/dovecot-run,
                         state_dir TMP/dovecot-state, log TMP/dovecot.log
                         (LDA: TMP/lda.log), passdb and userdb the
                         passwd-file TMP/dovecot-users (alice and bob,
                         password "secret", uid/gid the mailbox user of
                         common.users(), mail maildir:TMP/mail/%u), LMTP
                         on the UNIX socket TMP/dovecot-lmtp (mode 0600,
                         owned by the mail system's mail_owner), IMAP on a
                         free 127.0.0.1 port, plaintext login, no TLS
    TMP/etc, queue, data a private Postfix or Rostfix (common.subject()),
                         smtpd on a free 127.0.0.1 port, maillog TMP/maillog

starts both, sends one message with smtplib to the subject's smtpd, waits
(bounded) until the queue has settled, then checks what Dovecot's IMAP
shows (imaplib, logged in as the recipient) and the subject's maillog
lines with `to=<` (normalized: TMP path, queue IDs Qn, delays D, Dovecot's
LMTP session ID SESSION). Scenarios:

    lmtp          virtual_transport = lmtp:unix:TMP/dovecot-lmtp, one
                  message to alice and bob: both INBOXes hold it
    dovecot-lda   seed 004's pipe(8) service running Dovecot's deliver
                  (dovecot-lda) with flags=DRhu, virtual_transport =
                  dovecot: alice's INBOX holds it
    lda-tempfail  the recipient nobody-such is in virtual_mailbox_maps but
                  unknown to Dovecot: deliver exits 67 (EX_NOUSER), the
                  mail system bounces, and the bounce reaches the sender
                  bob through the same pipe

Both daemons are stopped and TMP removed in `finally`; every wait has a
timeout. Traffic is loopback only.
"""

import email
import imaplib
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
DELIVER = "/usr/lib/dovecot/deliver"
LMTP_BIN = "/usr/lib/dovecot/lmtp"
IMAP_BIN = "/usr/lib/dovecot/imap"

SETTLE_TIMEOUT = 15.0   # seconds the queue may take to settle
QUIET = 0.5             # seconds without maillog growth that count as settled
PASSWORD = "secret"

# ------------------------------------------------------------ expected values
#
# Observed from Postfix 3.7.11 (Debian) with Dovecot 2.3.19.1 by
# SUBJECT=postfix python3 tests/dovecot/run.py -v; the maillog lines are
# normalized as normalize_log() says (sorted within a queue ID).

EXPECTED = {
    "lmtp": {
        # relay= names Postfix's myhostname and the socket path (a UNIX
        # socket has no host name); SESSION is Dovecot's session ID (with
        # :R2 for the second recipient of the transaction).
        "log": [
            "postfix/lmtp: Q1: to=<alice@example.test>, relay=mail.example.test[TMP/dovecot-lmtp],"
            " delay=D, delays=D/D/D/D, dsn=2.0.0,"
            " status=sent (250 2.0.0 <alice@example.test> SESSION Saved)",
            "postfix/lmtp: Q1: to=<bob@example.test>, relay=mail.example.test[TMP/dovecot-lmtp],"
            " delay=D, delays=D/D/D/D, dsn=2.0.0,"
            " status=sent (250 2.0.0 <bob@example.test> SESSION Saved)",
        ],
        # mailbox -> the headers IMAP shows for each message in INBOX; no
        # Delivered-To: Dovecot's LMTP adds none for a two-recipient
        # transaction, and its Received shows Postfix's LHLO name.
        "imap": {
            user: [{
                "Subject": ["Dovecot interop: lmtp"],
                "Return-Path": ["<sender@client.example>"],
                "From": ["<sender@client.example>"],
                "To": ["<alice@example.test>, <bob@example.test>"],
                "Received (LMTP)": ["from mail.example.test by imap.example.test with LMTP id ID"
                                    " (envelope-from <sender@client.example>); DATE"],
            }] for user in ("alice", "bob")
        },
    },
    "dovecot-lda": {
        # Nothing after "service" when deliver prints nothing (see the
        # stats-writer note in DOVECOT_CONF).
        "log": [
            "postfix/pipe: Q1: to=<alice@example.test>, relay=dovecot, delay=D,"
            " delays=D/D/D/D, dsn=2.0.0, status=sent (delivered via dovecot service)",
        ],
        # flags=D and R: pipe(8) writes Delivered-To and Return-Path,
        # deliver adds neither (each header appears once).
        "imap": {
            "alice": [{
                "Subject": ["Dovecot interop: dovecot-lda"],
                "Return-Path": ["<sender@client.example>"],
                "Delivered-To": ["alice@example.test"],
                "From": ["<sender@client.example>"],
                "To": ["<alice@example.test>"],
            }],
            "bob": [],
        },
    },
    "lda-tempfail": {
        # deliver -d nobody-such@example.test exits 67 (EX_NOUSER): pipe(8)
        # bounces at once (5.1.1 "user unknown"), it does not defer; the
        # bounce goes to the sender bob through the same pipe.
        "log": [
            "postfix/bounce: Q1: sender non-delivery notification: Q2",
            "postfix/pipe: Q1: to=<nobody-such@example.test>, relay=dovecot, delay=D,"
            " delays=D/D/D/D, dsn=5.1.1, status=bounced (user unknown)",
            "postfix/pipe: Q2: to=<bob@example.test>, relay=dovecot, delay=D,"
            " delays=D/D/D/D, dsn=2.0.0, status=sent (delivered via dovecot service)",
        ],
        # The null sender reaches deliver (-f) and Return-Path as MAILER-DAEMON.
        "imap": {
            "alice": [],
            "bob": [{
                "Subject": ["Undelivered Mail Returned to Sender"],
                "Return-Path": ["<MAILER-DAEMON>"],
                "Delivered-To": ["bob@example.test"],
                "From": ["Mail Delivery System <MAILER-DAEMON@mail.example.test>"],
                "To": ["bob@example.test"],
                "DSN": ["Final-Recipient: rfc822; nobody-such@example.test",
                        "Action: failed", "Status: 5.1.1",
                        "Diagnostic-Code: x-unix; user unknown"],
            }],
        },
    },
}

# Headers compared for each message IMAP lists (all their occurrences, in order).
IMAP_HEADERS = ("Subject", "Return-Path", "Delivered-To", "From", "To")


# ------------------------------------------------------------ Dovecot

DOVECOT_CONF = """\
# Written by tests/dovecot/run.py: a private Dovecot for one scenario.
base_dir = {tmp}/dovecot-run
state_dir = {tmp}/dovecot-state
instance_name = rostfix-test-{instance}
log_path = {tmp}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
hostname = imap.example.test
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# Postfix hands over alice@example.test; the passwd-file knows alice.
auth_username_format = %Ln
first_valid_uid = {uid}
mail_location = maildir:{tmp}/mail/%u
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {tmp}/dovecot-users
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {tmp}/dovecot-users
}}
service imap-login {{
  {login_chroot}
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  {anvil_chroot}
}}
service lmtp {{
  unix_listener {tmp}/dovecot-lmtp {{
    mode = 0600
    user = {lmtp_user}
  }}
}}
service stats {{
  # deliver runs as the mailbox user, not in the dovecot group: without
  # this its stats-writer connect fails and the error lands in the text
  # the mail system logs ("Error: net_connect_unix(.../stats-writer)").
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol lda {{
  # deliver runs as the mailbox user: it cannot write the master's log.
  log_path = {tmp}/lda.log
}}
"""


class Dovecot:
    def __init__(self, tmp, mail_owner, uid, gid):
        self.tmp = tmp
        self.conf = os.path.join(tmp, "dovecot.conf")
        self.base_dir = os.path.join(tmp, "dovecot-run")
        self.socket = os.path.join(tmp, "dovecot-lmtp")
        self.imap_port = common.free_port()
        self.started = False
        root = os.geteuid() == 0
        me = pwd.getpwuid(os.getuid()).pw_name
        for d in ("mail", "dovecot-state"):
            os.mkdir(os.path.join(tmp, d), 0o755)
        lda_log = os.path.join(tmp, "lda.log")
        open(lda_log, "w").close()
        os.chmod(lda_log, 0o600)
        if root:
            os.chown(os.path.join(tmp, "mail"), uid, gid)
            os.chown(lda_log, uid, gid)
        with open(os.path.join(tmp, "dovecot-users"), "w") as f:
            for user in ("alice", "bob"):
                f.write(f"{user}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{tmp}/mail/{user}::\n")
        # Dovecot's auth process reads it as default_internal_user (dovecot).
        os.chmod(os.path.join(tmp, "dovecot-users"), 0o640)
        if root:
            os.chown(os.path.join(tmp, "dovecot-users"), 0, pwd.getpwnam("dovecot").pw_gid)
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(
                tmp=tmp, instance=os.path.basename(tmp), uid=min(uid, 500),
                imap_port=self.imap_port, lmtp_user=mail_owner,
                internal_user="dovecot" if root else me,
                internal_group="dovecot" if root else grp_name(os.getgid()),
                login_user="dovenull" if root else me,
                # Without root Dovecot can chroot nothing.
                login_chroot="" if root else "chroot =",
                anvil_chroot="" if root else "chroot =",
            ))
        os.chmod(self.conf, 0o644)

    def start(self):
        self.started = True
        # The daemon keeps its stdout/stderr: a file, not a pipe run() would
        # wait on until the daemon ends.
        out = os.path.join(self.tmp, "dovecot.out")
        with open(out, "wb") as f:
            rc = subprocess.run([DOVECOT, "-c", self.conf], stdin=subprocess.DEVNULL,
                                stdout=f, stderr=f, timeout=30).returncode
        if rc != 0:
            raise RuntimeError(f"dovecot -c {self.conf} exited {rc}:\n{tail(out)}")
        deadline = time.time() + 15
        while not (os.path.exists(self.socket) and common.wait_listening(self.imap_port, 0.2)):
            if time.time() > deadline:
                raise RuntimeError(f"Dovecot: no LMTP socket or IMAP port 15 s after start;"
                                   f" log:\n{tail(os.path.join(self.tmp, 'dovecot.log'))}")
            time.sleep(0.1)

    def master_pid(self):
        try:
            return int(open(os.path.join(self.base_dir, "master.pid")).read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if not self.started:
            return
        pid = self.master_pid()
        try:
            run([DOVEADM, "-c", self.conf, "stop"], timeout=20)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        if pid is None:
            return
        deadline = time.time() + 10
        while alive(pid):
            if time.time() > deadline:
                # Last resort: the master this script started, by its pid file.
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
                break
            time.sleep(0.1)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not running (Dovecot is not our child, but be safe).
    try:
        return open(f"/proc/{pid}/stat").read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


# ------------------------------------------------------------ the mail system

MAIN_CF = """\
myhostname = mail.example.test
mydomain = example.test
mydestination = localhost
mynetworks = 127.0.0.1/32
relayhost = [127.0.0.1]:1
alias_maps =
alias_database =
biff = no
virtual_mailbox_domains = example.test
virtual_mailbox_maps = hash:{tmp}/etc/vmailbox
"""

VMAILBOX = """\
alice@example.test     alice
bob@example.test       bob
nobody-such@example.test   nobody-such
"""

# Added to common.MASTER_CF: Postfix's lmtp client and seed 004's
# Dovecot pipe service (Debian's path; -c names the private dovecot.conf).
MASTER_CF_EXTRA = """\
lmtp      unix  -       -       n       -       -       lmtp
dovecot   unix  -       n       n       -       -       pipe
  flags=DRhu user={user}:{group} argv={deliver} -c {conf} -f ${{sender}} -d ${{recipient}}
"""

SCENARIO_MAIN_CF = {
    "lmtp": "virtual_transport = lmtp:unix:{tmp}/dovecot-lmtp\n",
    "dovecot-lda": "virtual_transport = dovecot\ndovecot_destination_recipient_limit = 1\n",
    "lda-tempfail": "virtual_transport = dovecot\ndovecot_destination_recipient_limit = 1\n",
}

# sender, recipients, the mailboxes IMAP then looks at
SCENARIO_MAIL = {
    "lmtp": ("sender@client.example", ["alice@example.test", "bob@example.test"],
             ["alice", "bob"]),
    "dovecot-lda": ("sender@client.example", ["alice@example.test"], ["alice", "bob"]),
    "lda-tempfail": ("bob@example.test", ["nobody-such@example.test"], ["alice", "bob"]),
}


class MailSystem:
    def __init__(self, bin_dir, tmp, scenario, dovecot_conf):
        self.bin = bin_dir
        self.tmp = tmp
        self.etc = os.path.join(tmp, "etc")
        self.queue = os.path.join(tmp, "queue")
        self.port = common.free_port()
        self.started = False
        self.mail_owner, self.uid, self.gid = common.users()
        for d in ("etc", "queue", "data"):
            os.mkdir(os.path.join(tmp, d), 0o755)
        if os.geteuid() == 0:
            owner = pwd.getpwnam(self.mail_owner)
            os.chown(os.path.join(tmp, "data"), owner.pw_uid, owner.pw_gid)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("# Written by tests/dovecot/run.py: a private instance on loopback.\n"
                    + common.private_main_cf(tmp, self.mail_owner)
                    + MAIN_CF.format(tmp=tmp)
                    + SCENARIO_MAIN_CF[scenario].format(tmp=tmp))
        user = pwd.getpwuid(self.uid).pw_name
        group = grp_name(self.gid)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(common.MASTER_CF.format(port=self.port)
                    + MASTER_CF_EXTRA.format(user=user, group=group, deliver=DELIVER,
                                             conf=dovecot_conf))
        with open(os.path.join(self.etc, "vmailbox"), "w") as f:
            f.write(VMAILBOX)
        age_files(self.etc)
        self.command("postmap", "-c", self.etc, f"hash:{self.etc}/vmailbox")
        age_files(self.etc)

    def command(self, name, *args, timeout=60):
        path = os.path.join(self.bin, name)
        if not os.path.exists(path):
            raise RuntimeError(f"{path} does not exist")
        env = dict(os.environ, LC_ALL="C")
        env.pop("MAIL_CONFIG", None)
        return run([path, *args], timeout=timeout, env=env)

    def start(self):
        self.started = True
        self.command("postfix", "-c", self.etc, "start")
        if not common.wait_listening(self.port, 10):
            raise RuntimeError(f"nothing listens on 127.0.0.1:{self.port} 10 s after start")

    def stop(self):
        if not self.started:
            return
        pidfile = os.path.join(self.queue, "pid", "master.pid")
        try:
            self.command("postfix", "-c", self.etc, "stop", timeout=30)
        except (RuntimeError, subprocess.TimeoutExpired):
            try:
                # Last resort: the master this script started, by its pid file.
                os.kill(int(open(pidfile).read().split()[0]), 9)
            except (OSError, ValueError, IndexError):
                pass

    def maillog(self):
        try:
            with open(os.path.join(self.tmp, "maillog"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def busy(self):
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
            if not self.busy() and time.time() - since >= QUIET:
                return True
            if time.time() > deadline:
                return False
            time.sleep(0.05)


def grp_name(gid):
    import grp
    return grp.getgrgid(gid).gr_name


def age_files(d):
    # Postfix commands pause when main.cf is younger than a second.
    past = time.time() - 3600
    for name in os.listdir(d):
        os.utime(os.path.join(d, name), (past, past))


def run(argv, timeout, env=None):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, env=env, timeout=timeout)
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        both = (out + proc.stderr.decode("utf-8", "replace")).rstrip("\n")
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n    | "
                           + both.replace("\n", "\n    | "))
    return out


def tail(path, n=20):
    try:
        return "".join(open(path, errors="replace").readlines()[-n:])
    except OSError as e:
        return str(e)


# ------------------------------------------------------------ normalizing

LOG_LINE = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ (\S+?)\[\d+\]: (.*)$")
QUEUE_ID = re.compile(r"^([0-9A-F]{6,}): ")
NOTIFICATION_ID = re.compile(r"notification: ([0-9A-F]{6,})$")
# Dovecot's LMTP reply: 250 2.0.0 <rcpt> SESSIONID Saved
LMTP_SESSION = re.compile(r"(250 2\.0\.0 <[^>]*> )[A-Za-z0-9+/]{20,}(?::R\d+)?( Saved)")


def normalize_log(log_text, tmp):
    """The `to=<` and `notification` lines, program without pid, TMP as
    TMP, queue IDs Q1.. in order of first mention, delays D, Dovecot's
    session IDs SESSION; grouped by queue ID, sorted in a group."""
    ids = {}
    lines = []
    for line in log_text.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        program, body = m.group(1), m.group(2)
        for pattern in (QUEUE_ID, NOTIFICATION_ID):
            for qid in pattern.findall(body):
                ids.setdefault(qid, f"Q{len(ids) + 1}")
        if re.match(r"[0-9A-F]{6,}: to=<", body) or NOTIFICATION_ID.search(body):
            lines.append(f"{program}: {body}")
    out = {}
    for line in lines:
        line = line.replace(tmp, "TMP")
        line = re.sub(r"\bdelay=[\d.]+", "delay=D", line)
        line = re.sub(r"\bdelays=[\d./]+", "delays=D/D/D/D", line)
        line = LMTP_SESSION.sub(r"\1SESSION\2", line)
        if ids:
            line = re.sub(r"(?<![0-9A-Za-z])(" + "|".join(ids) + r")(?![0-9A-Za-z])",
                          lambda m: ids[m.group(1)], line)
        q = re.search(r": Q(\d+)", line)
        out.setdefault(int(q.group(1)) if q else 0, []).append(line)
    return [l for k in sorted(out) for l in sorted(out[k])]


def normalize_received(value):
    value = re.sub(r"\s+", " ", value).strip()
    value = re.sub(r"\bid \S+", "id ID", value)
    return re.sub(r";.*", "; DATE", value)


def dsn_fields(c, n, tmp):
    """The per-recipient fields of a delivery status notification (its
    prose may differ between Postfix and Rostfix; these may not)."""
    typ, data = c.fetch(str(n), "(BODY.PEEK[])")
    if typ != "OK":
        raise RuntimeError(f"FETCH {n} BODY[]: {typ} {data}")
    msg = email.message_from_bytes(b"".join(p[1] for p in data if isinstance(p, tuple)))
    out = []
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload()[1:]:
                for k in ("Final-Recipient", "Action", "Status", "Diagnostic-Code"):
                    if block[k] is not None:
                        out.append(f"{k}: " + re.sub(r"\s+", " ", block[k]).replace(tmp, "TMP"))
    return out


def imap_view(port, user, tmp):
    """{header: [values]} for every message in the user's INBOX, in order,
    and the EXISTS count SELECT gives."""
    c = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    try:
        c.login(user, PASSWORD)
        typ, data = c.select("INBOX", readonly=True)
        if typ != "OK":
            raise RuntimeError(f"SELECT INBOX as {user}: {typ} {data}")
        exists = int(data[0])
        messages = []
        for n in range(1, exists + 1):
            typ, data = c.fetch(str(n), "(BODY.PEEK[HEADER])")
            if typ != "OK":
                raise RuntimeError(f"FETCH {n} as {user}: {typ} {data}")
            raw = b"".join(part[1] for part in data if isinstance(part, tuple))
            msg = email.message_from_bytes(raw)
            view = {}
            for h in IMAP_HEADERS:
                values = [re.sub(r"\s+", " ", v).replace(tmp, "TMP")
                          for v in (msg.get_all(h) or [])]
                if values:
                    view[h] = values
            # Dovecot's LMTP trace header: the LHLO name and envelope it got.
            lmtp = [normalize_received(v) for v in (msg.get_all("Received") or [])
                    if " with LMTP " in re.sub(r"\s+", " ", v)]
            if lmtp:
                view["Received (LMTP)"] = lmtp
            if msg.get_content_type() == "multipart/report":
                view["DSN"] = dsn_fields(c, n, tmp)
            messages.append(view)
        c.logout()
        return exists, messages
    finally:
        try:
            c.shutdown()
        except OSError:
            pass


# ------------------------------------------------------------ scenarios

def send(port, sender, recipients, subject_line):
    msg = (f"From: <{sender}>\r\n"
           f"To: {', '.join('<' + r + '>' for r in recipients)}\r\n"
           f"Subject: {subject_line}\r\n"
           f"Message-Id: <dovecot-interop@client.example>\r\n"
           f"\r\n"
           f"Delivered by the Rostfix/Postfix Dovecot interop test.\r\n")
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=30) as c:
        c.sendmail(sender, recipients, msg.encode())


def run_scenario(name, subject, bin_dir, check, verbose, keep):
    print(f"-- {name}")
    tmp = tempfile.mkdtemp(prefix=f"dovecot-{name}-")
    os.chmod(tmp, 0o755)    # the lmtp client (mail_owner) and deliver (nobody) walk in
    mail_owner, uid, gid = common.users()
    dovecot = mta = None
    failed_before = len(check.failures)
    try:
        dovecot = Dovecot(tmp, mail_owner, uid, gid)
        mta = MailSystem(bin_dir, tmp, name, dovecot.conf)
        dovecot.start()
        mta.start()
        sender, recipients, mailboxes = SCENARIO_MAIL[name]
        send(mta.port, sender, recipients, f"Dovecot interop: {name}")
        check(mta.settle(), f"{name}: queue settled within {SETTLE_TIMEOUT:.0f} s")
        expected = EXPECTED[name]
        log = normalize_log(mta.maillog(), tmp)
        deadline = time.time() + 2.0
        while log != expected["log"] and time.time() < deadline:
            time.sleep(0.2)     # late lines (the bounce's own delivery)
            log = normalize_log(mta.maillog(), tmp)
        if verbose or log != expected["log"]:
            print("   maillog (normalized):")
            for line in log:
                print("     " + line)
        check(log == expected["log"], f"{name}: maillog to=<...> lines as Postfix's")
        for user in mailboxes:
            exists, messages = imap_view(dovecot.imap_port, user, tmp)
            want = expected["imap"].get(user, [])
            if verbose or messages != want:
                print(f"   IMAP {user}: EXISTS {exists}")
                for m in messages:
                    print(f"     {m!r}")
            check(exists == len(want), f"{name}: IMAP {user} INBOX EXISTS {len(want)}")
            check(messages == want, f"{name}: IMAP {user} message headers as with Postfix")
    except Exception as e:
        check(False, f"{name}: {type(e).__name__}: {e}")
    finally:
        for daemon in (mta, dovecot):
            if daemon is not None:
                try:
                    daemon.stop()
                except Exception as e:
                    check(False, f"{name}: stopping {type(daemon).__name__}: {e}")
        failed = len(check.failures) > failed_before
        if failed and (verbose or keep):
            for log in ("dovecot.log", "lda.log"):
                text = tail(os.path.join(tmp, log))
                if text.strip():
                    print(f"   {log}:\n" + "".join("     " + l for l in text.splitlines(True)))
        if keep and failed:
            print(f"   kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    verbose = "-v" in argv
    keep = "--keep" in argv
    names = [a for a in argv if not a.startswith("-")] or list(EXPECTED)
    for n in names:
        if n not in EXPECTED:
            sys.exit(f"no scenario {n}; there are {', '.join(EXPECTED)}")
    missing = [p for p in (DOVECOT, DOVEADM, DELIVER, LMTP_BIN, IMAP_BIN) if not os.path.exists(p)]
    if missing:
        print(f"skip  dovecot interop: {', '.join(missing)} not installed "
              "(dovecot-core, dovecot-lmtpd, dovecot-imapd; scripts/deps installs them)")
        return 0
    subject, bin_dir = common.subject()
    if subject not in ("postfix", "rostfix"):
        sys.exit("SUBJECT must be postfix or rostfix")
    if subject == "postfix" and os.geteuid() != 0:
        sys.exit("SUBJECT=postfix needs root (postfix start)")
    check = common.Checks()
    t0 = time.time()
    for n in names:
        run_scenario(n, subject, bin_dir, check, verbose, keep)
    print(f"dovecot ({subject}): {len(check.failures)} failed checks in {time.time() - t0:.0f} s")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
