"""What the benchmarks share: one private instance of a subject (Debian's
Postfix or Rostfix) on a loopback port with the same main.cf and master.cf,
virtual(8) delivery into a Maildir, and the measures taken of its process
tree. Each bench/ script adds its own load and its own report.
"""

import os
import pwd
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where each subject's `postfix` and `postmap` are; a script's --baseline
# puts another Rostfix build in Postfix's place; ROSTFIX_BIN=DIR runs the
# build in DIR as Rostfix (bench/profile); bench/ab gives each instance
# its own.
BIN = {"rostfix": os.environ.get("ROSTFIX_BIN") or os.path.join(ROOT, "target", "release"),
       "postfix": "/usr/sbin"}
SIZE = 5120
CLK = os.sysconf("SC_CLK_TCK")

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_peername_lookup = no
myhostname = mail.bench.test
mydomain = bench.test
mydestination = localhost
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{relay_port}
alias_maps =
alias_database =
local_recipient_maps =
biff = no
virtual_mailbox_domains = bench.test
virtual_mailbox_base = {dir}/vmail
virtual_mailbox_maps = lmdb:{dir}/etc/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
"""

MASTER_CF = """\
127.0.0.1:{port} inet n -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_order(subjects, run):
    """The subjects in the order run number `run` measures them: reversed
    every other run, so that whatever favours the first (or the second)
    of a pair falls on each subject alike. An A/A run (the same build in
    both places, --baseline) moved by up to 10% between the two places."""
    return list(subjects) if run % 2 == 0 else list(reversed(subjects))


def settle(seconds):
    """Syncs, then leaves the file systems alone for a while before a
    subject measures. This machine's root file system is ext4 without a
    journal; there the inode allocator skips inodes freed in the last 60
    seconds, scanning past them on every create, so a subject measured
    right after the other pays for the other's deleted queue files (perf:
    a third of the CPU in ext4_create's recently_deleted and its locks,
    and half the throughput). Settling makes the order not matter."""
    if seconds > 0:
        os.sync()
        time.sleep(seconds)


class Instance:
    """A subject's private instance in `tmp`: etc/ (main.cf, master.cf,
    vmailbox), queue/, data/ and vmail/, the Maildir u@bench.test."""

    def __init__(self, subject, tmp, relay_port=1, main_extra="", bindir=None):
        self.subject, self.dir, self.port = subject, tmp, free_port()
        # Where its `postfix` and `postmap` are (bench/ab: either build).
        self.bindir = bindir or BIN[subject]
        self.etc = os.path.join(tmp, "etc")
        self.queue = os.path.join(tmp, "queue")
        owner, nobody = pwd.getpwnam("postfix"), pwd.getpwnam("nobody")
        os.chmod(tmp, 0o755)  # Postfix's daemons run as postfix
        for d in ("etc", "queue", "data", "vmail"):
            os.mkdir(os.path.join(tmp, d), 0o755)
        os.chown(os.path.join(tmp, "data"), owner.pw_uid, owner.pw_gid)
        os.chown(os.path.join(tmp, "vmail"), nobody.pw_uid, nobody.pw_gid)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(dir=tmp, uid=nobody.pw_uid, gid=nobody.pw_gid,
                                   relay_port=relay_port) + main_extra)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        with open(os.path.join(self.etc, "vmailbox"), "w") as f:
            f.write("u@bench.test bench.test/u/\n")
        self.age()
        self.cmd("postmap", "lmdb:" + os.path.join(self.etc, "vmailbox"))
        self.age()
        self.new = os.path.join(tmp, "vmail", "bench.test", "u", "new")

    def age(self):
        """Backdates etc/ so that neither subject sees a table as newer
        than its process (Postfix's daemons restart when one is)."""
        past = time.time() - 3600
        for n in os.listdir(self.etc):
            os.utime(os.path.join(self.etc, n), (past, past))

    def cmd(self, name, *args):
        subprocess.run([os.path.join(self.bindir, name), "-c", self.etc, *args],
                       check=True, stdout=subprocess.DEVNULL, timeout=60)

    def start(self):
        self.cmd("postfix", "start")
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit(f"{self.subject}: nothing listens on {self.port}")
                time.sleep(0.05)
        self.pid = int(open(os.path.join(self.queue, "pid", "master.pid")).read())

    def stop(self):
        self.cmd("postfix", "stop")

    def delivered(self):
        try:
            return len(os.listdir(self.new))
        except FileNotFoundError:
            return 0

    def wait_delivered(self, n, limit=600):
        deadline = time.time() + limit
        while self.delivered() < n:
            if time.time() > deadline:
                raise SystemExit(f"{self.subject}: only {self.delivered()} of {n} delivered")
            time.sleep(0.002)

    def tree(self):
        """pids of the mail system: the master and its descendants."""
        kids = {}
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(int(p))
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(kids.get(p, []))
        return out

    def cpu(self):
        """Seconds of CPU used by the tree so far, reaped children included."""
        total = 0
        for p in self.tree():
            try:
                f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # utime stime cutime cstime (fields 14-17; 12-15 after the name)
            total += sum(int(x) for x in f[11:15])
        return total / CLK

    def pss_kb(self):
        total = 0
        for p in self.tree():
            try:
                for line in open(f"/proc/{p}/smaps_rollup"):
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total
