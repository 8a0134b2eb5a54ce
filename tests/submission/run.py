#!/usr/bin/env python3
"""Server TLS and SMTP AUTH (issue 6): STARTTLS on 25 and 587, implicit TLS
on 465 (smtpd_tls_wrappermode), smtpd_tls_security_level may/encrypt,
smtpd_tls_auth_only, AUTH through a real Dovecot auth socket (and Cyrus
SASL with saslauthd), the Received header's ESMTPS/ESMTPSA and TLS comment,
STARTTLS command injection, checked with clients Rostfix did not write
(Python's smtplib and ssl, swaks, openssl s_client).

README: SUBJECT=postfix python3 tests/submission/run.py (root) checks
Debian's Postfix against the values below; plain `python3
tests/submission/run.py` checks Rostfix (target/release or $ROSTFIX_BIN).
Options: -v prints what was observed (replies, normalized log lines,
headers), --keep keeps the temporary directory of a failing scenario;
arguments name scenarios. Exits 0 with a `skip` line when Dovecot, swaks
or openssl is missing (scripts/deps installs them); the saslauthd and
sasldb scenarios alone are skipped without sasl2-bin. Takes about 45 s.

Scenarios (each on a fresh instance):

    submission  port 587: EHLO offers STARTTLS and no AUTH; MAIL and AUTH
                before STARTTLS get 530 5.7.0; after TLS EHLO offers AUTH
                PLAIN LOGIN; RCPT before AUTH 554 (client restrictions); a
                wrong password 535 5.7.8 and its warning log line; alice's
                AUTH PLAIN 235; relaying to example.org 250
    smtps       port 465: SMTP_SSL + AUTH LOGIN submission; a plain-text
                client gets no greeting and its EHLO ends the connection;
                the smtps service's log lines
    port25      port 25 (may): relay refused 554 5.7.1; STARTTLS offered,
                no AUTH (smtpd_sasl_auth_enable = no there); a TLS message
                to alice's Maildir has `with ESMTPS` and the TLS comment
                (smtpd_tls_received_header); a 587 submission to alice has
                `with ESMTPSA` and (Authenticated sender: alice)
    injection   STARTTLS\r\nRSET\r\n in one packet: one 220, and inside TLS
                the first reply is EHLO's; the disconnect line counts no rset
    tools       swaks --tls --auth PLAIN on 587 and --tlsc on 465 exit 0;
                openssl s_client -starttls smtp verifies the certificate
                (subject CN = mail.example.test) and gets EHLO answered
    log         the submission smtpd's log lines for one authenticated
                submission (TLS line, client=... sasl_method=PLAIN,
                sasl_username=alice, disconnect ... commands=8)
    saslauthd   smtpd_sasl_type = cyrus, smtpd.conf pwcheck_method:
                saslauthd; Debian's saslauthd (-a rimap) logs in at the
                private Dovecot's IMAP port
    saslauthd-sasldb  the same with saslauthd -a sasldb and
                smtpd_sasl_local_domain = $myhostname: alice@HOSTNAME in
                TMP/sasldb2, bind-mounted over /etc/sasldb2 (the only file
                the mechanism reads) in saslauthd's own mount namespace;
                the logged sasl_username is alice@HOSTNAME
    sasldb      smtpd_sasl_type = cyrus, auxprop sasldb TMP/sasldb2 made
                by saslpasswd2 (no daemon)
    login       smtpd_sender_login_maps (SENDER_LOGINS) with
                smtpd_sender_restrictions = reject_sender_login_mismatch,
                SASL on port 25 too: 553 5.7.1 "not logged in" on 25 for
                alice's address, "not owned by user alice" on 587 for an
                unlisted one; her own, a domain's that lists ALICE and the
                null sender pass
    login-warn  the same under warn_if_reject: accepted, reject_warning
    login-nosasl  without SASL in the service: the two halves of
                reject_sender_login_mismatch are ignored with a warning
    ccert       smtpd_tls_ask_ccert on port 25 with EC client certificates
                TMP/client-*.pem and TMP/other-*.pem: CLIENT's SHA-256
                fingerprint in relay_clientcerts relays
                (permit_tls_clientcerts), OTHER's in check_ccert_access
                is refused "Client certificate rejected"; no certificate,
                no relay; the Untrusted TLS log lines and the Received
                header's client-signature and (Client CN ...) comment
    ccert-ca    smtpd_tls_CAfile TMP/ca.pem signed SIGNED's certificate:
                Trusted, relays on 25 (permit_tls_all_clientcerts),
                (verified OK) in Received; CLIENT's self-signed one may
                not; on 587 smtpd_tls_req_ccert answers 421 4.7.1 after
                STARTTLS without a trusted certificate (NOQUEUE: abort)

Each scenario builds a temporary directory TMP holding

    TMP/etc, queue, data  a private Postfix or Rostfix (common.subject()):
                          common.private_main_cf + MAIN_CF below, and
                          common.MASTER_CF (smtpd on 127.0.0.1:SMTP, the
                          "port 25" service, smtpd_tls_security_level = may)
                          plus seed 004's submission and smtps services
                          (MASTER_CF_EXTRA) on 127.0.0.1:SUBMISSION and
                          127.0.0.1:SMTPS, all free loopback ports
    TMP/cert.pem, key.pem a self-signed RSA 2048 certificate for
                          CN=mail.example.test (subjectAltName the name and
                          IP 127.0.0.1), made with the openssl command; the
                          clients verify the server against it
    TMP/dovecot.conf      a private Dovecot that only authenticates (and
                          for saslauthd serves IMAP on a free port):
                          passwd-file TMP/dovecot-users (alice:{PLAIN}secret),
                          auth client socket TMP/queue/private/auth (mode
                          0660, owned by mail_owner) = smtpd_sasl_path
                          private/auth
    TMP/etc/sasl/smtpd.conf  Cyrus SASL's settings (cyrus scenarios)
    TMP/vmail             virtual_mailbox_base: alice@example.test's Maildir

Outside domains (example.org) are relayed to relayhost [127.0.0.1]:1, where
nothing listens: relayed mail just stays queued. All daemons are stopped
and TMP removed in `finally`; every wait has a timeout.

Expected values were observed from Postfix 3.7.11 (Debian 12, OpenSSL
3.0.19, Dovecot 2.3.19.1, Cyrus SASL 2.1.28, Python 3.11's ssl) with
SUBJECT=postfix python3 tests/submission/run.py -v. Log lines are compared
normalized: program without pid, queue IDs Q1.., TMP for the temporary
directory, only the lines logged after the start-up probes.
"""

import base64
import hashlib
import os
import pwd
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
SWAKS = "/usr/bin/swaks"
OPENSSL = "/usr/bin/openssl"
SASLAUTHD = "/usr/sbin/saslauthd"
SASLPASSWD2 = "/usr/sbin/saslpasswd2"
UNSHARE = "/usr/bin/unshare"
# Where Debian's saslauthd -a sasldb reads (sasl2-bin creates it).
SYSTEM_SASLDB = "/etc/sasldb2"
IMAP_BIN = "/usr/lib/dovecot/imap"

PASSWORD = "secret"
HOSTNAME = "mail.example.test"
OUTSIDE = "someone@example.org"
LOCAL = "alice@example.test"
SETTLE = 10.0           # seconds a delivery or a log line may take
VERBOSE = False
SUBJECT = "rostfix"

# ------------------------------------------------------------ configuration

# After common.private_main_cf(). mynetworks excludes loopback so that the
# test client is an outside client; smtpd_relay_restrictions ends in
# reject_unauth_destination (the default defer_unauth_destination answers
# 454 4.7.1 instead of 554 5.7.1).
MAIN_CF = """\
myhostname = mail.example.test
mydomain = example.test
mydestination = localhost
mynetworks = 192.0.2.0/24
relayhost = [127.0.0.1]:1
alias_maps =
alias_database =
biff = no
virtual_mailbox_domains = example.test
virtual_mailbox_base = {tmp}/vmail
virtual_mailbox_maps = hash:{tmp}/etc/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_tls_cert_file = {tmp}/cert.pem
smtpd_tls_key_file = {tmp}/key.pem
smtpd_tls_security_level = may
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtpd_sasl_authenticated_header = yes
"""

MAIN_CF_SASL = {
    "dovecot": "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n",
    # Cyrus SASL reads TMP/etc/sasl/smtpd.conf (smtpd_sasl_path names it).
    # Debian's Postfix looks in $config_directory/sasl whatever
    # cyrus_sasl_config_path says (strace showed it), so both name it.
    "saslauthd": "smtpd_sasl_type = cyrus\nsmtpd_sasl_path = smtpd\n"
                 "cyrus_sasl_config_path = {tmp}/etc/sasl\n",
    # saslauthd is told smtpd_sasl_local_domain as the realm (empty by
    # default); sasldb keys users by realm.
    "saslauthd-sasldb": "smtpd_sasl_type = cyrus\nsmtpd_sasl_path = smtpd\n"
                        "cyrus_sasl_config_path = {tmp}/etc/sasl\n"
                        "smtpd_sasl_local_domain = $myhostname\n",
    "sasldb": "smtpd_sasl_type = cyrus\nsmtpd_sasl_path = smtpd\n"
              "cyrus_sasl_config_path = {tmp}/etc/sasl\n",
    # Rostfix's own type: no daemon, a table of {SCHEME}hashed passwords.
    "rostfix": "smtpd_sasl_type = rostfix\n"
               "rostfix_sasl_password_maps = texthash:{tmp}/etc/sasl_users\n",
}

# Scenarios' own main.cf lines, after the rest. The login checks need SASL
# in the service (without it Postfix ignores them with a warning), so
# port 25 has AUTH here too, after STARTTLS (Postfix's smtpd exits when
# the auth socket is missing at connect time, as it is for the start-up
# probes, which come before Dovecot).
SCENARIO_CF = {
    "login": "smtpd_sasl_auth_enable = yes\nsmtpd_tls_auth_only = yes\n"
             "smtpd_sender_login_maps = hash:{tmp}/etc/sender_logins\n"
             "smtpd_sender_restrictions = reject_sender_login_mismatch\n",
    "login-warn": "smtpd_sasl_auth_enable = yes\nsmtpd_tls_auth_only = yes\n"
                  "smtpd_sender_login_maps = hash:{tmp}/etc/sender_logins\n"
                  "smtpd_sender_restrictions = warn_if_reject reject_sender_login_mismatch\n",
    "login-nosasl": "smtpd_sender_login_maps = hash:{tmp}/etc/sender_logins\n"
                    "smtpd_sender_restrictions = reject_sender_login_mismatch\n",
    # Client certificates: CLIENT's fingerprint may relay, OTHER's is
    # refused by check_ccert_access.
    # A CA (TMP/ca.pem) vouches for SIGNED's certificate: it may relay
    # on 25 (permit_tls_all_clientcerts), and 587 requires such a one.
    "ccert-ca": "smtpd_tls_ask_ccert = yes\nsmtpd_tls_req_ccert = yes\n"
                "smtpd_tls_CAfile = {tmp}/ca.pem\n"
                "smtpd_relay_restrictions = permit_tls_all_clientcerts, reject_unauth_destination\n",
    "ccert": "smtpd_tls_ask_ccert = yes\n"
             "smtpd_tls_fingerprint_digest = sha256\n"
             "relay_clientcerts = hash:{tmp}/etc/relay_clientcerts\n"
             "smtpd_relay_restrictions = permit_tls_clientcerts, reject_unauth_destination\n"
             "smtpd_recipient_restrictions = check_ccert_access hash:{tmp}/etc/ccert_access\n",
}

# smtpd_sender_login_maps: who may use which sender address.
SENDER_LOGINS = """\
alice@example.test      alice
@shared.test            bob, ALICE
"""

VMAILBOX = "alice@example.test     example.test/alice/\n"

# Seed 004's submission and smtps services, bound to loopback ports, with
# Debian's commented-out -o overrides; tlsmgr for the TLS PRNG/cache.
MASTER_CF_EXTRA = """\
127.0.0.1:{submission} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o milter_macro_daemon_name=ORIGINATING
127.0.0.1:{smtps} inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o milter_macro_daemon_name=ORIGINATING
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
"""

DOVECOT_CONF = """\
# Written by tests/submission/run.py: a private Dovecot that only authenticates.
base_dir = {tmp}/dovecot-run
state_dir = {tmp}/dovecot-state
instance_name = rostfix-submission-{instance}
log_path = {tmp}/dovecot.log
protocols = {protocols}
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# A wrong password is answered at once (the default waits 2 s).
auth_failure_delay = 0
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp}/dovecot-users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home=/nonexistent
}}
service auth {{
  unix_listener {socket} {{
    mode = 0660
    user = {mail_owner}
  }}
}}
service anvil {{
  {anvil_chroot}
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
mail_location = maildir:{tmp}/dovecot-mail/%u
"""

# Cyrus SASL's configuration for Postfix's smtpd (smtpd_sasl_path = smtpd):
# through saslauthd, or the sasldb auxprop plugin in smtpd itself.
SMTPD_CONF = {
    "saslauthd": "pwcheck_method: saslauthd\nsaslauthd_path: {tmp}/saslauthd/mux\n"
                 "mech_list: PLAIN LOGIN\n",
    "sasldb": "pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
              "sasldb_path: {tmp}/sasldb2\nmech_list: PLAIN LOGIN\n",
}

# ------------------------------------------------------------ expected values
# Observed from Postfix 3.7.11 (Debian 12, OpenSSL 3.0.19, Dovecot 2.3.19.1,
# Python 3.11 ssl) with SUBJECT=postfix python3 tests/submission/run.py -v.

# EHLO replies (after the host name line), by port and TLS state.
EHLO_SUBMISSION_PLAIN = [
    "PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "STARTTLS",
    "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING",
]
EHLO_SUBMISSION_TLS = [
    "PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "AUTH PLAIN LOGIN",
    "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING",
]
EHLO_SMTP_PLAIN = EHLO_SUBMISSION_PLAIN
EHLO_SMTP_TLS = [
    "PIPELINING", "SIZE 10240000", "VRFY", "ETRN",
    "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING",
]

REPLY_MUST_STARTTLS = (530, "5.7.0 Must issue a STARTTLS command first")
REPLY_STARTTLS = (220, "2.0.0 Ready to start TLS")
REPLY_AUTH_OK = (235, "2.7.0 Authentication successful")
REPLY_AUTH_FAILED = {
    # Dovecot's auth server gives no reason: Postfix's own words.
    "dovecot": (535, "5.7.8 Error: authentication failed: (reason unavailable)"),
    "saslauthd": (535, "5.7.8 Error: authentication failed: authentication failure"),
    "saslauthd-sasldb": (535, "5.7.8 Error: authentication failed: authentication failure"),
    "sasldb": (535, "5.7.8 Error: authentication failed: authentication failure"),
    # Rostfix's built-in type answers as Cyrus does.
    "rostfix": (535, "5.7.8 Error: authentication failed: authentication failure"),
}
REPLY_MAIL_OK = (250, "2.1.0 Ok")
REPLY_RCPT_OK = (250, "2.1.5 Ok")
REPLY_RELAY_DENIED = (554, "5.7.1 <someone@example.org>: Relay access denied")
REPLY_RSET = (250, "2.0.0 Ok")

LOG_AUTH_FAILED = {
    "dovecot": "postfix/submission/smtpd: warning: unknown[127.0.0.1]:"
               " SASL PLAIN authentication failed: (reason unavailable), sasl_username=alice",
    "saslauthd": "postfix/submission/smtpd: warning: unknown[127.0.0.1]:"
                 " SASL PLAIN authentication failed: authentication failure, sasl_username=alice",
    # smtpd_sasl_local_domain qualifies the logged name.
    "saslauthd-sasldb": "postfix/submission/smtpd: warning: unknown[127.0.0.1]:"
                        " SASL PLAIN authentication failed: authentication failure,"
                        " sasl_username=alice@mail.example.test",
    "sasldb": "postfix/submission/smtpd: warning: unknown[127.0.0.1]:"
              " SASL PLAIN authentication failed: authentication failure, sasl_username=alice",
    "rostfix": "postfix/submission/smtpd: warning: unknown[127.0.0.1]:"
               " SASL PLAIN authentication failed: authentication failure, sasl_username=alice",
}

# ------------------------------------------------------------ helpers


def say(*lines):
    if VERBOSE:
        for line in lines:
            print("   " + line)


def run(argv, timeout, env=None, input=None, check=True):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL if input is None else None,
                          input=input, env=env, timeout=timeout)
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        both = (out + err).rstrip("\n")
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n    | "
                           + both.replace("\n", "\n    | "))
    return proc.returncode, out, err


def tail(path, n=20):
    try:
        return "".join(open(path, errors="replace").readlines()[-n:])
    except OSError as e:
        return str(e)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return open(f"/proc/{pid}/stat").read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def wait_gone(pid, seconds):
    deadline = time.time() + seconds
    while alive(pid):
        if time.time() > deadline:
            return False
        time.sleep(0.1)
    return True


def grp_name(gid):
    import grp
    return grp.getgrgid(gid).gr_name


def age_files(d):
    # Postfix commands pause when main.cf is younger than a second.
    past = time.time() - 3600
    for name in os.listdir(d):
        os.utime(os.path.join(d, name), (past, past))


def make_certificate(tmp):
    run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", os.path.join(tmp, "key.pem"), "-out", os.path.join(tmp, "cert.pem"),
         "-days", "2", "-subj", f"/CN={HOSTNAME}",
         "-addext", f"subjectAltName=DNS:{HOSTNAME},IP:127.0.0.1"], timeout=60)
    os.chmod(os.path.join(tmp, "key.pem"), 0o600)


def make_client_certificate(tmp, who):
    """TMP/WHO-cert.pem and WHO-key.pem, a self-signed EC certificate for
    CN=WHO.example; returns its SHA-256 fingerprint as Postfix writes
    them (upper-case hex pairs joined by colons)."""
    cert, key = (os.path.join(tmp, f"{who}-{x}.pem") for x in ("cert", "key"))
    run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={who}.example"],
        timeout=60)
    der = ssl.PEM_cert_to_DER_cert(open(cert).read())
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def make_ca_signed_certificate(tmp, who):
    """TMP/ca.pem (a CA, CN=Test CA) and TMP/WHO-cert.pem, WHO-key.pem: an
    EC client certificate for CN=WHO.example that the CA signed."""
    ca_key, ca = os.path.join(tmp, "ca-key.pem"), os.path.join(tmp, "ca.pem")
    cert, key = (os.path.join(tmp, f"{who}-{x}.pem") for x in ("cert", "key"))
    csr = os.path.join(tmp, f"{who}.csr")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run([OPENSSL, "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"], timeout=60)
    run([OPENSSL, "req", "-new", *ec, "-keyout", key, "-out", csr,
         "-subj", f"/CN={who}.example"], timeout=60)
    ext = os.path.join(tmp, f"{who}.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    run([OPENSSL, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext], timeout=60)
    os.chmod(ca, 0o644)


def client_cert_context(tmp, who):
    """tls_context, presenting WHO's client certificate."""
    ctx = tls_context(tmp)
    ctx.load_cert_chain(os.path.join(tmp, f"{who}-cert.pem"), os.path.join(tmp, f"{who}-key.pem"))
    return ctx


def tls_context(tmp):
    """A client context that trusts only the instance's certificate."""
    ctx = ssl.create_default_context(cafile=os.path.join(tmp, "cert.pem"))
    ctx.check_hostname = True
    return ctx


def features(ehlo_reply):
    """The EHLO keywords after the host name line, as text."""
    return ehlo_reply.decode("utf-8", "replace").split("\n")[1:]


def reply(code_msg):
    code, msg = code_msg
    return code, msg.decode("utf-8", "replace").replace("\n", " / ")


def auth_plain(c, user, password):
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return reply(c.docmd("AUTH", "PLAIN " + token))


def message(sender, rcpt, subject_line, msgid):
    return (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject_line}\r\n"
            f"Message-Id: <{msgid}@client.example>\r\n\r\n"
            f"Sent by the Rostfix/Postfix submission test.\r\n").encode()


def transaction(c, sender, rcpt, body):
    """MAIL, RCPT, DATA by hand: each reply as (code, text)."""
    out = {"mail": reply(c.docmd("MAIL", f"FROM:<{sender}>"))}
    out["rcpt"] = reply(c.docmd("RCPT", f"TO:<{rcpt}>"))
    if out["rcpt"][0] == 250:
        code, msg = c.data(body)
        out["data"] = (code, re.sub(r"queued as [0-9A-Za-z]+", "queued as QID",
                                    msg.decode("utf-8", "replace")))
    return out


def read_reply(sock, seconds=10):
    """One SMTP reply from a raw socket: (lines, bytes read past it)."""
    deadline = time.time() + seconds
    buf = b""
    while True:
        lines = buf.split(b"\r\n")
        for i, line in enumerate(lines[:-1]):
            if len(line) >= 4 and line[3:4] == b" ":
                return [l.decode("utf-8", "replace") for l in lines[:i + 1]], \
                    b"\r\n".join(lines[i + 1:])
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError(f"no complete SMTP reply in {seconds} s: {buf!r}")
        sock.settimeout(left)
        data = sock.recv(4096)
        if not data:
            raise ConnectionError(f"connection closed; read {buf!r}")
        buf += data


def drain(sock, seconds):
    """Whatever arrives within `seconds`; b"" on a quiet or closed socket,
    with `closed` set when the peer closed or reset the connection."""
    sock.settimeout(seconds)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return data, True
            data += chunk
    except socket.timeout:
        return data, False
    except (ConnectionResetError, ssl.SSLError, OSError):
        return data, True


# ------------------------------------------------------------ log normalizing

LOG_LINE = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ (\S+?)\[\d+\]: (.*)$")


def normalize_log(text, inst):
    ids = {}
    out = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        body = m.group(2)
        qm = re.match(r"([0-9A-Za-z]{8,}): ", body)
        if qm:
            ids.setdefault(qm.group(1), f"Q{len(ids) + 1}")
        line = f"{m.group(1)}: {body}".replace(inst.tmp, "TMP")
        for qid, name in ids.items():
            line = re.sub(r"(?<![0-9A-Za-z])" + qid + r"(?![0-9A-Za-z])", name, line)
        for port, name in ((inst.smtp, "SMTP"), (inst.submission, "SUBMISSION"),
                           (inst.smtps, "SMTPS")):
            line = line.replace(f"127.0.0.1:{port}", f"127.0.0.1:{name}")
        line = re.sub(r"\bdelay=[\d.]+", "delay=D", line)
        line = re.sub(r"\bdelays=[\d./]+", "delays=D/D/D/D", line)
        out.append(line)
    return out


# ------------------------------------------------------------ Dovecot


class Dovecot:
    """A private Dovecot: the auth client socket TMP/queue/private/auth for
    smtpd_sasl_type = dovecot, and with imap=True also IMAP on a free
    loopback port (saslauthd's rimap mechanism logs in there)."""

    def __init__(self, tmp, mail_owner, uid, gid, imap=False):
        self.tmp = tmp
        self.conf = os.path.join(tmp, "dovecot.conf")
        self.base_dir = os.path.join(tmp, "dovecot-run")
        self.socket = os.path.join(tmp, "queue", "private", "auth")
        self.imap_port = common.free_port() if imap else 0
        self.started = False
        root = os.geteuid() == 0
        me = pwd.getpwuid(os.getuid()).pw_name
        os.mkdir(os.path.join(tmp, "dovecot-state"), 0o755)
        users = os.path.join(tmp, "dovecot-users")
        with open(users, "w") as f:
            f.write(f"alice:{{PLAIN}}{PASSWORD}::::::\n")
        # Dovecot's auth process reads it as default_internal_user (dovecot).
        os.chmod(users, 0o640)
        if root:
            os.chown(users, 0, pwd.getpwnam("dovecot").pw_gid)
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(
                tmp=tmp, instance=os.path.basename(tmp), uid=uid, gid=gid,
                socket=self.socket, mail_owner=mail_owner,
                protocols="imap" if imap else "none", imap_port=self.imap_port,
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
        out = os.path.join(self.tmp, "dovecot.out")
        with open(out, "wb") as f:
            rc = subprocess.run([DOVECOT, "-c", self.conf], stdin=subprocess.DEVNULL,
                                stdout=f, stderr=f, timeout=30).returncode
        if rc != 0:
            raise RuntimeError(f"dovecot -c {self.conf} exited {rc}:\n{tail(out)}")
        deadline = time.time() + 15
        while not (os.path.exists(self.socket)
                   and (not self.imap_port or common.wait_listening(self.imap_port, 0.2))):
            if time.time() > deadline:
                raise RuntimeError(f"Dovecot: no auth socket {self.socket} (or IMAP port)"
                                   f" 15 s after start;"
                                   f" log:\n{tail(os.path.join(self.tmp, 'dovecot.log'))}")
            time.sleep(0.1)

    def stop(self):
        if not self.started:
            return
        try:
            pid = int(open(os.path.join(self.base_dir, "master.pid")).read().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        try:
            run([DOVEADM, "-c", self.conf, "stop"], timeout=20)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        if pid is not None and not wait_gone(pid, 10):
            try:
                os.kill(pid, 9)   # last resort: the master this script started
            except OSError:
                pass


# ------------------------------------------------------------ Cyrus SASL


def write_smtpd_conf(tmp, kind):
    os.mkdir(os.path.join(tmp, "etc", "sasl"), 0o755)
    with open(os.path.join(tmp, "etc", "sasl", "smtpd.conf"), "w") as f:
        f.write(SMTPD_CONF[kind].format(tmp=tmp))
    os.chmod(os.path.join(tmp, "etc", "sasl", "smtpd.conf"), 0o644)


class Saslauthd:
    """Debian's saslauthd (sasl2-bin) on TMP/saslauthd/mux, a child of this
    script (-d), stopped by its pid, with the rimap mechanism: an IMAP
    LOGIN at the private Dovecot."""

    def __init__(self, tmp, mail_owner, uid, gid):
        self.tmp = tmp
        self.dir = os.path.join(tmp, "saslauthd")
        self.proc = None
        self.dovecot = Dovecot(tmp, mail_owner, uid, gid, imap=True)
        os.mkdir(self.dir, 0o755)
        write_smtpd_conf(tmp, "saslauthd")

    def command(self):
        return [SASLAUTHD, "-d", "-a", "rimap", "-O", f"127.0.0.1/{self.dovecot.imap_port}",
                "-m", self.dir, "-n", "1"]

    def start(self):
        if self.dovecot is not None:
            self.dovecot.start()
        log = open(os.path.join(self.tmp, "saslauthd.log"), "wb")
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            # On SIGTERM saslauthd signals its whole process group: its own.
            start_new_session=True)
        log.close()
        deadline = time.time() + 10
        while not os.path.exists(os.path.join(self.dir, "mux")):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("saslauthd did not make its socket:\n"
                                   + tail(os.path.join(self.tmp, "saslauthd.log")))
            time.sleep(0.1)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.dovecot is not None:
            self.dovecot.stop()


class SaslauthdSasldb(Saslauthd):
    """saslauthd -a sasldb, as most guides run it: alice@HOSTNAME (realm =
    myhostname) in TMP/sasldb2, made by saslpasswd2. The mechanism reads
    only /etc/sasldb2 (-O is ignored), which a test must not touch; so
    saslauthd runs in a mount namespace of its own (unshare) where
    TMP/sasldb2 is bind-mounted over /etc/sasldb2. The system's file and
    every other process's view of it stay as they are."""

    def __init__(self, tmp, mail_owner, uid, gid):
        self.tmp = tmp
        self.dir = os.path.join(tmp, "saslauthd")
        self.proc = None
        self.dovecot = None
        os.mkdir(self.dir, 0o755)
        self.db = os.path.join(tmp, "sasldb2")
        run([SASLPASSWD2, "-f", self.db, "-p", "-c", "-u", HOSTNAME, "alice"],
            timeout=20, input=PASSWORD.encode())
        write_smtpd_conf(tmp, "saslauthd")

    def command(self):
        return [UNSHARE, "--mount", "--propagation", "private", "sh", "-c",
                f'mount --bind "$1" {SYSTEM_SASLDB} && shift && exec "$@"', "sh", self.db,
                SASLAUTHD, "-d", "-a", "sasldb", "-m", self.dir, "-n", "1"]


class Sasldb:
    """No daemon: Cyrus SASL's sasldb auxprop plugin in smtpd reads
    TMP/sasldb2, made by saslpasswd2 (realm = myhostname)."""

    def __init__(self, tmp, mail_owner, uid, gid):
        self.tmp = tmp
        db = os.path.join(tmp, "sasldb2")
        run([SASLPASSWD2, "-f", db, "-p", "-c", "-u", HOSTNAME, "alice"],
            timeout=20, input=PASSWORD.encode())
        if os.geteuid() == 0:
            owner = pwd.getpwnam(mail_owner)
            os.chown(db, owner.pw_uid, owner.pw_gid)
        write_smtpd_conf(tmp, "sasldb")

    def start(self):
        pass

    def stop(self):
        pass


class Builtin:
    """smtpd_sasl_type = rostfix (Rostfix only): alice's password in a
    table, as `openssl passwd -6` hashes it ({SHA512-CRYPT})."""

    def __init__(self, tmp, mail_owner, uid, gid):
        rc, out, _ = run([OPENSSL, "passwd", "-6", "-stdin"], timeout=20,
                         input=PASSWORD.encode())
        with open(os.path.join(tmp, "etc", "sasl_users"), "w") as f:
            f.write(f"alice {{SHA512-CRYPT}}{out.strip()}\n")

    def start(self):
        pass

    def stop(self):
        pass


HELPERS = {"dovecot": Dovecot, "saslauthd": Saslauthd, "saslauthd-sasldb": SaslauthdSasldb,
           "sasldb": Sasldb, "rostfix": Builtin}


# ------------------------------------------------------------ the mail system


class Instance:
    def __init__(self, name, bin_dir, sasl="dovecot"):
        self.name = name
        self.bin = bin_dir
        self.sasl = sasl
        self.tmp = tempfile.mkdtemp(prefix=f"submission-{name}-")
        os.chmod(self.tmp, 0o755)
        self.etc = os.path.join(self.tmp, "etc")
        self.queue = os.path.join(self.tmp, "queue")
        self.smtp, self.submission, self.smtps = (common.free_port() for _ in range(3))
        self.mail_owner, self.uid, self.gid = common.users()
        self.started = False
        self.helper = None
        self.offset = 0
        for d in ("etc", "queue", "data", "vmail"):
            os.mkdir(os.path.join(self.tmp, d), 0o755)
        if os.geteuid() == 0:
            owner = pwd.getpwnam(self.mail_owner)
            os.chown(os.path.join(self.tmp, "data"), owner.pw_uid, owner.pw_gid)
            os.chown(os.path.join(self.tmp, "vmail"), self.uid, self.gid)
        make_certificate(self.tmp)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("# Written by tests/submission/run.py: a private instance on loopback.\n"
                    + common.private_main_cf(self.tmp, self.mail_owner)
                    + MAIN_CF.format(tmp=self.tmp, uid=self.uid, gid=self.gid)
                    + MAIN_CF_SASL[sasl].format(tmp=self.tmp)
                    + SCENARIO_CF.get(name, "").format(tmp=self.tmp))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(common.MASTER_CF.format(port=self.smtp)
                    + MASTER_CF_EXTRA.format(submission=self.submission, smtps=self.smtps))
        with open(os.path.join(self.etc, "vmailbox"), "w") as f:
            f.write(VMAILBOX)
        with open(os.path.join(self.etc, "sender_logins"), "w") as f:
            f.write(SENDER_LOGINS)
        self.client_fp = {who: make_client_certificate(self.tmp, who)
                          for who in ("client", "other")}
        make_ca_signed_certificate(self.tmp, "signed")
        with open(os.path.join(self.etc, "relay_clientcerts"), "w") as f:
            f.write(f"{self.client_fp['client']} client.example\n")
        with open(os.path.join(self.etc, "ccert_access"), "w") as f:
            f.write(f"{self.client_fp['other']} REJECT Not this one\n")
        # The SASL side's files before the start: the start-up probes
        # already spawn smtpd processes, and Cyrus SASL reads smtpd.conf
        # when smtpd starts.
        self.helper = HELPERS[sasl](self.tmp, self.mail_owner, self.uid, self.gid)
        age_files(self.etc)
        for table in ("vmailbox", "sender_logins", "relay_clientcerts", "ccert_access"):
            self.command("postmap", "-c", self.etc, f"hash:{self.etc}/{table}")
        age_files(self.etc)

    def command(self, name, *args, timeout=60):
        path = os.path.join(self.bin, name)
        if not os.path.exists(path):
            raise RuntimeError(f"{path} does not exist")
        env = dict(os.environ, LC_ALL="C")
        env.pop("MAIL_CONFIG", None)
        return run([path, *args], timeout=timeout, env=env)[1]

    def start(self):
        self.started = True
        self.command("postfix", "-c", self.etc, "start")
        for port in (self.smtp, self.submission, self.smtps):
            if not common.wait_listening(port, 10):
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} 10 s after start")
        self.mark_log()
        # The SASL server's socket lives in queue/private (made by start).
        # Postfix makes it (mail_owner, 0700); for a subject that does
        # not, the script does, so that AUTH itself is what gets tested.
        private = os.path.join(self.queue, "private")
        if not os.path.isdir(private):
            print(f"   note: {self.bin}/postfix start made no queue/private; the script makes it")
            os.mkdir(private, 0o700)
            if os.geteuid() == 0:
                owner = pwd.getpwnam(self.mail_owner)
                os.chown(private, owner.pw_uid, owner.pw_gid)
        self.helper.start()

    def stop(self):
        if self.helper is not None:
            self.helper.stop()
        if not self.started:
            return
        pidfile = os.path.join(self.queue, "pid", "master.pid")
        try:
            self.command("postfix", "-c", self.etc, "stop", timeout=30)
        except (RuntimeError, subprocess.TimeoutExpired):
            try:
                os.kill(int(open(pidfile).read().split()[0]), 9)
            except (OSError, ValueError, IndexError):
                pass

    def mark_log(self):
        """Waits (bounded) until the three wait_listening probes are logged,
        then makes log() start after them."""
        self.offset = 0
        deadline = time.time() + 3
        while self.maillog().count(" commands=0/0") < 3 and time.time() < deadline:
            time.sleep(0.05)
        self.offset = len(self.maillog())

    def maillog(self):
        try:
            with open(os.path.join(self.tmp, "maillog"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log(self):
        """The normalized log lines after the start-up probes."""
        return normalize_log(self.maillog()[self.offset:], self)

    def wait_log(self, predicate, seconds=SETTLE):
        """The normalized log once predicate(lines) holds, or at the deadline."""
        deadline = time.time() + seconds
        while True:
            lines = self.log()
            if predicate(lines) or time.time() > deadline:
                return lines
            time.sleep(0.1)

    def maildir_files(self):
        new = os.path.join(self.tmp, "vmail", "example.test", "alice", "new")
        try:
            return sorted(os.path.join(new, n) for n in os.listdir(new))
        except FileNotFoundError:
            return []

    def wait_delivered(self, count, seconds=SETTLE):
        deadline = time.time() + seconds
        while len(self.maildir_files()) < count and time.time() < deadline:
            time.sleep(0.1)
        return self.maildir_files()

    def smtp_client(self, port):
        return smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=20)

    def smtps_client(self):
        return smtplib.SMTP_SSL("127.0.0.1", self.smtps, local_hostname="client.example",
                                timeout=20, context=tls_context(self.tmp))


def deviate(line):
    """DESIGN.md's deliberate difference: Rostfix names itself after `by HOST`."""
    if SUBJECT == "rostfix":
        return line.replace(f"by {HOSTNAME} (Postfix)", f"by {HOSTNAME} (Rostfix)")
    return line


def received_headers(path):
    """The Received headers of a delivered file, unfolded lines kept as
    they are (list of header texts, each a list of physical lines)."""
    data = open(path, "rb").read().decode("utf-8", "replace")
    head = data.split("\n\n", 1)[0].split("\n")
    out, cur = [], None
    for line in head:
        if line[:1] in (" ", "\t") and cur is not None:
            cur.append(line)
            continue
        cur = None
        if line.lower().startswith("received:"):
            cur = [line]
            out.append(cur)
    return out


def normalize_received(lines, inst):
    """A Received header with its line layout kept; the queue ID as QID,
    the date as DATE."""
    text = "\n".join(lines)
    text = re.sub(r" id [0-9A-Za-z]+", " id QID", text)
    text = re.sub(r"; [A-Z][a-z]{2}, .*$", "; DATE", text, flags=re.S)
    text = re.sub(r";\n\t[A-Z][a-z]{2}, .*$", ";\n\tDATE", text, flags=re.S)
    return text.split("\n")


# ------------------------------------------------------------ scenarios


def scenario_submission(inst, check, n):
    """1. Port 587: STARTTLS required, AUTH only after TLS, relaying when
    authenticated, a wrong password."""
    with inst.smtp_client(inst.submission) as c:
        code, msg = c.ehlo("client.example")
        plain = features(msg)
        say(f"587 EHLO before TLS: {code} {plain}")
        check(code == 250 and "STARTTLS" in plain, f"{n}: 587 EHLO before TLS lists STARTTLS")
        check(not any(f.startswith("AUTH") for f in plain),
              f"{n}: 587 EHLO before TLS lists no AUTH (smtpd_tls_auth_only)")
        check(plain == EHLO_SUBMISSION_PLAIN, f"{n}: 587 EHLO keywords before TLS as Postfix's")
        r = reply(c.docmd("MAIL", "FROM:<alice@example.test>"))
        say(f"587 MAIL before STARTTLS: {r}")
        check(r == REPLY_MUST_STARTTLS, f"{n}: 587 MAIL before STARTTLS: {REPLY_MUST_STARTTLS}")
        r = auth_plain(c, "alice", PASSWORD)
        say(f"587 AUTH before STARTTLS: {r}")
        check(r[0] >= 500, f"{n}: 587 AUTH before STARTTLS refused ({r})")
        r = reply(c.starttls(context=tls_context(inst.tmp)))
        say(f"587 STARTTLS: {r}")
        check(r == REPLY_STARTTLS, f"{n}: 587 STARTTLS: {REPLY_STARTTLS}")
        code, msg = c.ehlo("client.example")
        tls = features(msg)
        say(f"587 EHLO after TLS: {code} {tls}")
        check("AUTH PLAIN LOGIN" in tls, f"{n}: 587 EHLO after TLS lists AUTH PLAIN LOGIN")
        check("STARTTLS" not in tls, f"{n}: 587 EHLO after TLS no longer lists STARTTLS")
        check(tls == EHLO_SUBMISSION_TLS, f"{n}: 587 EHLO keywords after TLS as Postfix's")
        r = reply(c.docmd("MAIL", "FROM:<alice@example.test>"))
        say(f"587 MAIL after TLS, before AUTH: {r}")
        check(r == REPLY_MAIL_OK, f"{n}: 587 MAIL after TLS before AUTH: {REPLY_MAIL_OK}")
        r = reply(c.docmd("RCPT", f"TO:<{OUTSIDE}>"))
        say(f"587 RCPT before AUTH: {r}")
        check(r[0] == 554, f"{n}: 587 RCPT before AUTH refused (554)")
        c.rset()
        r = auth_plain(c, "alice", "wrong")
        say(f"587 AUTH PLAIN wrong password: {r}")
        want = REPLY_AUTH_FAILED[inst.sasl]
        check(r == want, f"{n}: 587 wrong password: {want}")
        r = auth_plain(c, "alice", PASSWORD)
        say(f"587 AUTH PLAIN alice: {r}")
        check(r == REPLY_AUTH_OK, f"{n}: 587 AUTH PLAIN alice: {REPLY_AUTH_OK}")
        t = transaction(c, "alice@example.test", OUTSIDE,
                        message("alice@example.test", OUTSIDE, "submission relay", "s1"))
        say(f"587 relay transaction: {t}")
        check(t.get("mail") == REPLY_MAIL_OK and t.get("rcpt") == REPLY_RCPT_OK,
              f"{n}: 587 authenticated relay to {OUTSIDE}: MAIL and RCPT 250")
        check(t.get("data", (0, ""))[0] == 250 and "queued as" in t["data"][1],
              f"{n}: 587 authenticated relay: DATA 250 ... queued as")
    want = LOG_AUTH_FAILED[inst.sasl]
    log = inst.wait_log(lambda l: want in l)
    say("log:", *("  " + l for l in log if "submission" in l))
    check(want in log, f"{n}: log line: {want}")


def smtps_submission(inst, check, n):
    with inst.smtps_client() as c:
        code, msg = c.ehlo("client.example")
        tls = features(msg)
        say(f"465 EHLO: {code} {tls}")
        check("AUTH PLAIN LOGIN" in tls and "STARTTLS" not in tls,
              f"{n}: 465 EHLO lists AUTH PLAIN LOGIN, no STARTTLS")
        c.user, c.password = "alice", PASSWORD
        r = reply(c.auth("LOGIN", c.auth_login))
        say(f"465 AUTH LOGIN: {r}")
        check(r == REPLY_AUTH_OK, f"{n}: 465 AUTH LOGIN alice: {REPLY_AUTH_OK}")
        t = transaction(c, "alice@example.test", OUTSIDE,
                        message("alice@example.test", OUTSIDE, "smtps relay", "s2"))
        say(f"465 transaction: {t}")
        check(t.get("mail") == REPLY_MAIL_OK and t.get("rcpt") == REPLY_RCPT_OK
              and t.get("data", (0, ""))[0] == 250,
              f"{n}: 465 authenticated submission accepted (250 250 250)")


def scenario_smtps(inst, check, n):
    """2. Port 465: TLS first; AUTH LOGIN and a submission with SMTP_SSL;
    a plain-text client gets nothing."""
    try:
        smtps_submission(inst, check, n)
    except Exception as e:
        check(False, f"{n}: SMTP_SSL session: {type(e).__name__}: {e}")
    # The SMTP_SSL session's lines are all written before the next session
    # starts (its disconnect line could otherwise follow the next connect).
    inst.wait_log(lambda l: any(x.startswith("postfix/smtps/smtpd: disconnect") for x in l))
    # A plain-text client: no greeting comes (the server waits for a
    # ClientHello); its EHLO ends the connection.
    s = socket.create_connection(("127.0.0.1", inst.smtps), 10)
    try:
        greeting, closed = drain(s, 2.0)
        say(f"465 plain client, 2 s after connecting: {greeting!r} closed={closed}")
        check(greeting == b"" and not closed, f"{n}: 465 plain client gets no greeting")
        s.sendall(b"EHLO client.example\r\n")
        answer, closed = drain(s, 5.0)
        say(f"465 plain client after EHLO: {answer!r} closed={closed}")
        check(closed, f"{n}: 465 plain client's EHLO: connection closed")
        check(not answer.startswith(b"2") and not answer.startswith(b"5"),
              f"{n}: 465 plain client gets no SMTP reply")
    finally:
        s.close()
    log = inst.wait_log(lambda l: any("postfix/smtps/smtpd: disconnect from" in x
                                      and "commands=0" in x for x in l))
    mine = [l for l in log if l.startswith("postfix/smtps/")]
    say("log:", *("  " + l for l in mine))
    check(mine[:len(EXPECTED_SMTPS_LOG)] == EXPECTED_SMTPS_LOG,
          f"{n}: smtps log lines of the SMTP_SSL session as Postfix's")
    plain = mine[len(EXPECTED_SMTPS_LOG):]
    check(len(plain) == len(EXPECTED_SMTPS_PLAIN_LOG)
          and all(re.fullmatch(w, l) for w, l in zip(EXPECTED_SMTPS_PLAIN_LOG, plain)),
          f"{n}: smtps log lines of the plain-text session as Postfix's (OpenSSL's"
          " error text aside)")


EXPECTED_SMTPS_LOG = [
    "postfix/smtps/smtpd: connect from unknown[127.0.0.1]",
    "postfix/smtps/smtpd: Anonymous TLS connection established from unknown[127.0.0.1]:"
    " TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
    " server-signature RSA-PSS (2048 bits) server-digest SHA256",
    "postfix/smtps/smtpd: Q1: client=unknown[127.0.0.1], sasl_method=LOGIN, sasl_username=alice",
    "postfix/smtps/smtpd: disconnect from unknown[127.0.0.1]"
    " ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6",
]
# The plain-text client's session (regexps). Postfix 3.7.11 logged
#   SSL_accept error from unknown[127.0.0.1]: -1
#   warning: TLS library problem: error:0A00010B:SSL routines::wrong version
#     number:../ssl/record/ssl3_record.c:350:
# (a client that connects and closes without a byte, like common.wait_listening,
# gets "SSL_accept error from unknown[127.0.0.1]: lost connection" instead).
EXPECTED_SMTPS_PLAIN_LOG = [
    r"postfix/smtps/smtpd: connect from unknown\[127\.0\.0\.1\]",
    r"postfix/smtps/smtpd: SSL_accept error from unknown\[127\.0\.0\.1\]: -1",
    # The library's text is its own (OpenSSL: "wrong version number").
    r"postfix/smtps/smtpd: warning: TLS library problem: .+",
    r"postfix/smtps/smtpd: lost connection after CONNECT from unknown\[127\.0\.0\.1\]",
    r"postfix/smtps/smtpd: disconnect from unknown\[127\.0\.0\.1\] commands=0/0",
]


def scenario_port25(inst, check, n):
    """3. Port 25 (may): no relaying without AUTH, STARTTLS offered, ESMTPS
    and the TLS comment in Received; ESMTPSA for a 587 submission."""
    with inst.smtp_client(inst.smtp) as c:
        code, msg = c.ehlo("client.example")
        plain = features(msg)
        say(f"25 EHLO: {code} {plain}")
        check("STARTTLS" in plain, f"{n}: 25 EHLO lists STARTTLS")
        check(plain == EHLO_SMTP_PLAIN, f"{n}: 25 EHLO keywords as Postfix's")
        r = reply(c.docmd("MAIL", "FROM:<stranger@client.example>"))
        check(r == REPLY_MAIL_OK, f"{n}: 25 MAIL without TLS: {REPLY_MAIL_OK}")
        r = reply(c.docmd("RCPT", f"TO:<{OUTSIDE}>"))
        say(f"25 RCPT to outside: {r}")
        check(r == REPLY_RELAY_DENIED, f"{n}: 25 relay refused: {REPLY_RELAY_DENIED}")
        c.rset()
        r = reply(c.starttls(context=tls_context(inst.tmp)))
        check(r == REPLY_STARTTLS, f"{n}: 25 STARTTLS: {REPLY_STARTTLS}")
        say(f"25 TLS: {c.sock.version()} {c.sock.cipher()}")
        code, msg = c.ehlo("client.example")
        tls = features(msg)
        say(f"25 EHLO after TLS: {code} {tls}")
        check(tls == EHLO_SMTP_TLS, f"{n}: 25 EHLO keywords after TLS as Postfix's (no AUTH)")
        t = transaction(c, "stranger@client.example", LOCAL,
                        message("stranger@client.example", LOCAL, "port 25 TLS", "s3"))
        say(f"25 transaction: {t}")
        check(t.get("data", (0, ""))[0] == 250, f"{n}: 25 TLS message to {LOCAL} accepted")
        cipher = c.sock.cipher()
    files = inst.wait_delivered(1)
    check(len(files) == 1, f"{n}: the message reached alice's Maildir")
    if files:
        rec = received_headers(files[0])
        say("Received (25):", *("  " + l for l in rec[0]))
        got = normalize_received(rec[0], inst)
        want = [deviate(l.format(cipher=cipher[0], bits=cipher[2])) for l in EXPECTED_RECEIVED_25]
        check(len(rec) == 1, f"{n}: one Received header")
        check(got == want, f"{n}: Received header (25, TLS) as Postfix's")
    # The authenticated submission on 587 to the same user.
    with inst.smtp_client(inst.submission) as c:
        c.starttls(context=tls_context(inst.tmp))
        c.ehlo("client.example")
        r = auth_plain(c, "alice", PASSWORD)
        check(r == REPLY_AUTH_OK, f"{n}: 587 AUTH PLAIN alice")
        t = transaction(c, "alice@example.test", LOCAL,
                        message("alice@example.test", LOCAL, "port 587 TLS AUTH", "s4"))
        check(t.get("data", (0, ""))[0] == 250, f"{n}: 587 message to {LOCAL} accepted")
        cipher = c.sock.cipher()
    files = inst.wait_delivered(2)
    check(len(files) == 2, f"{n}: the second message reached alice's Maildir")
    second = [f for f in files if "port 587" in open(f, errors="replace").read()]
    if second:
        rec = received_headers(second[0])
        say("Received (587):", *("  " + l for l in rec[0]))
        got = normalize_received(rec[0], inst)
        want = [deviate(l.format(cipher=cipher[0], bits=cipher[2])) for l in EXPECTED_RECEIVED_587]
        check(got == want, f"{n}: Received header (587, TLS, AUTH) as Postfix's")
    log = inst.wait_log(lambda l: sum("to=<alice@example.test>" in x for x in l) >= 2)
    say("log:", *("  " + l for l in log))
    for want in EXPECTED_TLS_LOG_25:
        check(any(re.fullmatch(want, l) for l in log), f"{n}: log line ~ {want}")


# smtpd_tls_received_header = yes, smtpd_sasl_authenticated_header = yes;
# {cipher} and {bits} are what the client's ssl module reports for the
# session (Postfix prints OpenSSL's name for it, which is the same for TLS
# 1.3). Key exchange and signature are what OpenSSL 3.0 negotiates with
# Python's ssl for an RSA 2048 key.
EXPECTED_RECEIVED_25 = [
    "Received: from client.example (unknown [127.0.0.1])",
    "\t(using TLSv1.3 with cipher {cipher} ({bits}/{bits} bits)",
    "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)",
    "\t(No client certificate requested)",
    "\tby mail.example.test (Postfix) with ESMTPS id QID",
    "\tfor <alice@example.test>; DATE",
]
EXPECTED_RECEIVED_587 = [
    "Received: from client.example (unknown [127.0.0.1])",
    "\t(using TLSv1.3 with cipher {cipher} ({bits}/{bits} bits)",
    "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)",
    "\t(No client certificate requested)",
    "\t(Authenticated sender: alice)",
    "\tby mail.example.test (Postfix) with ESMTPSA id QID",
    "\tfor <alice@example.test>; DATE",
]
# smtpd_tls_loglevel = 1.
EXPECTED_TLS_LOG_25 = [
    r"postfix/smtpd: Anonymous TLS connection established from unknown\[127\.0\.0\.1\]:"
    r" TLSv1\.3 with cipher \S+ \(\d+/\d+ bits\) key-exchange X25519"
    r" server-signature RSA-PSS \(2048 bits\) server-digest SHA256",
    r"postfix/submission/smtpd: Anonymous TLS connection established from"
    r" unknown\[127\.0\.0\.1\]: TLSv1\.3 with cipher .*",
]


def scenario_injection(inst, check, n):
    """4. STARTTLS command injection: RSET pipelined after STARTTLS in the
    same packet must not run inside the TLS session."""
    s = socket.create_connection(("127.0.0.1", inst.smtp), 10)
    tls = None
    try:
        banner, rest = read_reply(s)
        say(f"banner: {banner}")
        s.sendall(b"EHLO client.example\r\n")
        ehlo, rest = read_reply(s)
        s.sendall(b"STARTTLS\r\nRSET\r\n")
        first, rest = read_reply(s)
        extra, closed = drain(s, 1.0)
        say(f"reply to STARTTLS: {first}, then {rest + extra!r} closed={closed}")
        check(first == ["220 2.0.0 Ready to start TLS"] and rest + extra == b"",
              f"{n}: one 220 reply to STARTTLS, nothing for RSET in plain text")
        if not first[0].startswith("220"):
            return
        tls = tls_context(inst.tmp).wrap_socket(s, server_hostname=HOSTNAME)
        say(f"handshake: {tls.version()} {tls.cipher()}")
        tls.sendall(b"EHLO client.example\r\n")
        after, rest = read_reply(tls)
        say(f"first reply inside TLS: {after}")
        check(after[0].startswith("250-mail.example.test") or after[0] == "250 mail.example.test",
              f"{n}: the first reply inside TLS is EHLO's 250 {HOSTNAME}, not RSET's")
        check(after[-1] != "250 2.0.0 Ok", f"{n}: RSET's 250 2.0.0 Ok did not come")
        tls.sendall(b"NOOP\r\n")
        noop, rest2 = read_reply(tls)
        say(f"NOOP: {noop} then {rest + rest2!r}")
        check(noop == ["250 2.0.0 Ok"] and rest + rest2 == b"",
              f"{n}: NOOP answered once: nothing queued from before TLS")
        tls.sendall(b"QUIT\r\n")
        quit_reply, _ = read_reply(tls)
        check(quit_reply == ["221 2.0.0 Bye"], f"{n}: QUIT: 221 2.0.0 Bye")
    finally:
        (tls or s).close()
    log = inst.wait_log(lambda l: any(x.startswith("postfix/smtpd: disconnect from") for x in l))
    mine = [l for l in log if l.startswith("postfix/smtpd:")]
    say("log:", *("  " + l for l in mine))
    for want in EXPECTED_INJECTION_LOG:
        check(want in mine, f"{n}: log line: {want}")


# Postfix discards the pipelined RSET and says so.
EXPECTED_INJECTION_LOG = [
    "postfix/smtpd: disconnect from unknown[127.0.0.1] ehlo=2 starttls=1 noop=1 quit=1 commands=5",
]


def scenario_tools(inst, check, n):
    """5. swaks with STARTTLS + AUTH PLAIN on 587 and --tlsc on 465;
    openssl s_client -starttls smtp."""
    for what, port, extra in (("587 --tls", inst.submission, ["--tls"]),
                              ("465 --tlsc", inst.smtps, ["--tlsc"])):
        rc, out, err = run([SWAKS, "--server", f"127.0.0.1:{port}", *extra,
                            "--auth", "PLAIN", "--auth-user", "alice",
                            "--auth-password", PASSWORD, "--helo", "client.example",
                            "--from", "alice@example.test", "--to", OUTSIDE,
                            "--timeout", "20"], timeout=60, check=False)
        say(f"swaks {what}: exit {rc}", *("  " + l for l in (out + err).splitlines()
                                          if l[:3] in ("<- ", "<~ ", "=== ", "-> ", "~> ")))
        check(rc == 0, f"{n}: swaks {what} --auth PLAIN exits 0")
        check("<~  235 2.7.0 Authentication successful" in out,
              f"{n}: swaks {what}: 235 inside TLS")
    rc, out, err = run([OPENSSL, "s_client", "-starttls", "smtp", "-connect",
                        f"127.0.0.1:{inst.smtp}", "-servername", HOSTNAME, "-crlf",
                        "-ign_eof", "-CAfile", os.path.join(inst.tmp, "cert.pem"),
                        "-verify_return_error"],
                       timeout=20, input=b"EHLO client.example\nQUIT\n", check=False)
    subjects = re.findall(r"^subject=(.*)$", out, re.M)
    replies = [l for l in out.splitlines() if re.match(r"^\d{3}[ -]", l)]
    say(f"openssl s_client: exit {rc}, subject {subjects}", *("  " + l for l in replies))
    check(rc == 0, f"{n}: openssl s_client -starttls smtp exits 0")
    check(subjects == [f"CN = {HOSTNAME}"], f"{n}: s_client sees subject CN = {HOSTNAME}")
    check("Verify return code: 0 (ok)" in out, f"{n}: s_client verifies the certificate")
    check(replies[:1] == [f"250-{HOSTNAME}"] and "250-STARTTLS" not in replies
          and replies[-1:] == ["221 2.0.0 Bye"],
          f"{n}: s_client's EHLO inside TLS answered (250-{HOSTNAME} ..., no STARTTLS), QUIT 221")


def scenario_log(inst, check, n):
    """6. The smtpd log lines of an authenticated submission on 587."""
    with inst.smtp_client(inst.submission) as c:
        c.starttls(context=tls_context(inst.tmp))
        c.ehlo("client.example")
        r = auth_plain(c, "alice", PASSWORD)
        check(r == REPLY_AUTH_OK, f"{n}: 587 AUTH PLAIN alice")
        c.sendmail("alice@example.test", [OUTSIDE],
                   message("alice@example.test", OUTSIDE, "log lines", "s6"))
    log = inst.wait_log(lambda l: any(x.startswith("postfix/submission/smtpd: disconnect")
                                      and "ehlo=" in x for x in l))
    mine = [l for l in log if l.startswith("postfix/submission/smtpd:")]
    say("log:", *("  " + l for l in mine))
    check(mine == EXPECTED_SUBMISSION_LOG, f"{n}: submission smtpd log lines as Postfix's")


EXPECTED_SUBMISSION_LOG = [
    "postfix/submission/smtpd: connect from unknown[127.0.0.1]",
    "postfix/submission/smtpd: Anonymous TLS connection established from unknown[127.0.0.1]:"
    " TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
    " server-signature RSA-PSS (2048 bits) server-digest SHA256",
    "postfix/submission/smtpd: Q1: client=unknown[127.0.0.1], sasl_method=PLAIN, sasl_username=alice",
    "postfix/submission/smtpd: disconnect from unknown[127.0.0.1]"
    " ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8",
]


def scenario_cyrus(inst, check, n):
    """7. smtpd_sasl_type = cyrus: through saslauthd (rimap at the private
    Dovecot), or the sasldb auxprop plugin (scenario names saslauthd and
    sasldb)."""
    with inst.smtp_client(inst.submission) as c:
        c.starttls(context=tls_context(inst.tmp))
        code, msg = c.ehlo("client.example")
        tls = features(msg)
        say(f"587 EHLO after TLS (cyrus): {tls}")
        check(any(f.startswith("AUTH ") for f in tls), f"{n}: 587 EHLO after TLS lists AUTH")
        check(tls == EHLO_SUBMISSION_TLS, f"{n}: 587 EHLO keywords (cyrus) as Postfix's")
        r = auth_plain(c, "alice", "wrong")
        say(f"AUTH PLAIN wrong password: {r}")
        want = REPLY_AUTH_FAILED[inst.sasl]
        check(r == want, f"{n}: wrong password: {want}")
        r = auth_plain(c, "alice", PASSWORD)
        say(f"AUTH PLAIN alice: {r}")
        check(r == REPLY_AUTH_OK, f"{n}: AUTH PLAIN alice: {REPLY_AUTH_OK}")
        t = transaction(c, "alice@example.test", OUTSIDE,
                        message("alice@example.test", OUTSIDE, "cyrus", "s7"))
        say(f"transaction: {t}")
        check(t.get("rcpt") == REPLY_RCPT_OK and t.get("data", (0, ""))[0] == 250,
              f"{n}: authenticated relay accepted")
    want = LOG_AUTH_FAILED[inst.sasl]
    log = inst.wait_log(lambda l: any(x.startswith("postfix/submission/smtpd: disconnect")
                                      and "ehlo=" in x for x in l))
    mine = [l for l in log if l.startswith("postfix/submission/smtpd:")]
    say("log:", *("  " + l for l in mine))
    check(want in mine, f"{n}: log line: {want}")
    expected = EXPECTED_CYRUS_LOG
    if inst.sasl == "saslauthd-sasldb":
        expected = [l.replace("sasl_username=alice", f"sasl_username=alice@{HOSTNAME}")
                    for l in expected]
    check(mine == expected, f"{n}: submission smtpd log lines as Postfix's")
    if inst.sasl.startswith("saslauthd"):
        text = open(os.path.join(inst.tmp, "saslauthd.log"), errors="replace").read()
        say("saslauthd.log:", *("  " + l for l in text.splitlines() if "auth " in l))
        check("auth failure: [user=alice] [service=smtp]" in text
              and "auth success: [user=alice] [service=smtp]" in text,
              f"{n}: saslauthd logged alice's failure and success (service smtp)")


# Cyrus SASL's own warning comes before Postfix's.
EXPECTED_CYRUS_LOG = [
    "postfix/submission/smtpd: connect from unknown[127.0.0.1]",
    "postfix/submission/smtpd: Anonymous TLS connection established from unknown[127.0.0.1]:"
    " TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
    " server-signature RSA-PSS (2048 bits) server-digest SHA256",
    "postfix/submission/smtpd: warning: SASL authentication failure: Password verification failed",
    "postfix/submission/smtpd: warning: unknown[127.0.0.1]: SASL PLAIN authentication failed:"
    " authentication failure, sasl_username=alice",
    "postfix/submission/smtpd: Q1: client=unknown[127.0.0.1], sasl_method=PLAIN, sasl_username=alice",
    "postfix/submission/smtpd: disconnect from unknown[127.0.0.1]"
    " ehlo=2 starttls=1 auth=1/2 mail=1 rcpt=1 data=1 quit=1 commands=8/9",
]


REPLY_NOT_LOGGED_IN = (553, "5.7.1 <alice@example.test>: Sender address rejected: not logged in")
REPLY_NOT_OWNED = (553, "5.7.1 <bob@example.test>: Sender address rejected:"
                        " not owned by user alice")
EXPECTED_LOGIN_LOG = [
    "postfix/smtpd: NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 553 5.7.1"
    " <alice@example.test>: Sender address rejected: not logged in;"
    " from=<alice@example.test> to=<alice@example.test> proto=ESMTP helo=<client.example>",
    "postfix/submission/smtpd: NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 553 5.7.1"
    " <bob@example.test>: Sender address rejected: not owned by user alice;"
    " from=<bob@example.test> to=<someone@example.org> proto=ESMTP helo=<client.example>",
]
EXPECTED_LOGIN_WARN_LOG = [
    "postfix/smtpd: NOQUEUE: reject_warning: RCPT from unknown[127.0.0.1]: 553 5.7.1"
    " <alice@example.test>: Sender address rejected: not logged in;"
    " from=<alice@example.test> to=<alice@example.test> proto=ESMTP helo=<client.example>",
]


def scenario_login(inst, check, n):
    """8. smtpd_sender_login_maps with reject_sender_login_mismatch in
    smtpd_sender_restrictions (judged at RCPT): on 25 nobody may use a
    sender address a login owns; on 587 alice may use hers, a domain's
    that lists her (in other case), the null sender, not bob's."""
    with inst.smtp_client(inst.smtp) as c:
        c.starttls(context=tls_context(inst.tmp))
        c.ehlo("client.example")
        t = transaction(c, "alice@example.test", "alice@example.test",
                        message("alice@example.test", "alice@example.test", "login", "s8a"))
        say(f"25, alice's address, not logged in: {t}")
        check(t["rcpt"] == REPLY_NOT_LOGGED_IN, f"{n}: 25 alice's address: {REPLY_NOT_LOGGED_IN}")
        c.rset()
        t = transaction(c, "carol@example.org", "alice@example.test",
                        message("carol@example.org", "alice@example.test", "login", "s8b"))
        say(f"25, an address no login owns: {t}")
        check(t["rcpt"] == REPLY_RCPT_OK, f"{n}: 25 an unowned sender address is accepted")
    with inst.smtp_client(inst.submission) as c:
        c.starttls(context=tls_context(inst.tmp))
        c.ehlo("client.example")
        r = auth_plain(c, "alice", PASSWORD)
        check(r == REPLY_AUTH_OK, f"{n}: AUTH PLAIN alice: {REPLY_AUTH_OK}")
        cases = [("alice@example.test", REPLY_RCPT_OK, "her own address"),
                 ("bob@example.test", REPLY_NOT_OWNED, "an address nobody owns"),
                 ("x@shared.test", REPLY_RCPT_OK, "@shared.test lists ALICE"),
                 ("", REPLY_RCPT_OK, "the null sender")]
        for sender, want, what in cases:
            t = transaction(c, sender, OUTSIDE, message(sender, OUTSIDE, "login", "s8c"))
            say(f"587 alice, {what} <{sender}>: {t}")
            check(t["rcpt"] == want, f"{n}: 587 alice, {what}: RCPT {want}")
            c.rset()
    log = inst.wait_log(lambda l: sum("disconnect from" in x for x in l) >= 2)
    mine = [l for l in log if "reject" in l]
    say("log:", *("  " + l for l in mine))
    check(mine == EXPECTED_LOGIN_LOG, f"{n}: the reject lines as Postfix's")


EXPECTED_LOGIN_NOSASL_LOG = [
    "postfix/smtpd: warning: restriction `reject_authenticated_sender_login_mismatch'"
    " ignored: no SASL support",
    "postfix/smtpd: warning: restriction `reject_unauthenticated_sender_login_mismatch'"
    " ignored: no SASL support",
]


def scenario_login_nosasl(inst, check, n):
    """10. reject_sender_login_mismatch on port 25 without SASL there: a
    warning per restriction and per recipient, and the mail accepted."""
    with inst.smtp_client(inst.smtp) as c:
        c.ehlo("client.example")
        t = transaction(c, "alice@example.test", "alice@example.test",
                        message("alice@example.test", "alice@example.test", "nosasl", "s10"))
        say(f"25 without SASL, alice's address: {t}")
        check(t["rcpt"] == REPLY_RCPT_OK, f"{n}: accepted")
    log = inst.wait_log(lambda l: any("disconnect from" in x for x in l))
    mine = [l for l in log if "warning" in l]
    say("log:", *("  " + l for l in mine))
    check(mine == EXPECTED_LOGIN_NOSASL_LOG, f"{n}: the warnings as Postfix's")


REPLY_CCERT_REJECTED = (554, "5.7.1 <other.example>: Client certificate rejected: Not this one")
RECEIVED_CCERT = [
    "Received: from client.example (unknown [127.0.0.1])",
    "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
    "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256",
    "\t client-signature ECDSA (prime256v1) client-digest SHA256)",
    "\t(Client CN \"client.example\", Issuer \"client.example\" (not verified))",
    "\tby mail.example.test (Postfix) with ESMTPS id QID;",
    "\tDATE",
]
EXPECTED_CCERT_LOG = [
    "postfix/smtpd: NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1"
    " <someone@example.org>: Relay access denied; from=<carol@example.org>"
    " to=<someone@example.org> proto=ESMTP helo=<client.example>",
    "postfix/smtpd: Anonymous TLS connection established from unknown[127.0.0.1]:"
    " TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
    " server-signature RSA-PSS (2048 bits) server-digest SHA256",
    "postfix/smtpd: NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1"
    " <someone@example.org>: Relay access denied; from=<carol@example.org>"
    " to=<someone@example.org> proto=ESMTP helo=<client.example>",
    "postfix/smtpd: Untrusted TLS connection established from unknown[127.0.0.1]:"
    " TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
    " server-signature RSA-PSS (2048 bits) server-digest SHA256"
    " client-signature ECDSA (prime256v1) client-digest SHA256",
    "postfix/smtpd: Untrusted TLS connection established from unknown[127.0.0.1]:"
    " TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
    " server-signature RSA-PSS (2048 bits) server-digest SHA256"
    " client-signature ECDSA (prime256v1) client-digest SHA256",
    "postfix/smtpd: NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 <other.example>:"
    " Client certificate rejected: Not this one; from=<carol@example.org>"
    " to=<alice@example.test> proto=ESMTP helo=<client.example>",
]


def relay_with_certificate(inst, who, msgid):
    """Port 25 under TLS with WHO's client certificate: one message to
    OUTSIDE and alice. The two RCPT replies and DATA's code."""
    with inst.smtp_client(inst.smtp) as c:
        c.starttls(context=client_cert_context(inst.tmp, who))
        c.ehlo("client.example")
        mail = reply(c.docmd("MAIL", "FROM:<carol@example.org>"))
        relay = reply(c.docmd("RCPT", f"TO:<{OUTSIDE}>"))
        local = reply(c.docmd("RCPT", "TO:<alice@example.test>"))
        code, _ = c.data(message("carol@example.org", "alice@example.test", who, msgid))
    say(f"25 TLS with {who}'s certificate: {mail} {relay} {local} DATA {code}")
    return relay, local, code


def scenario_ccert(inst, check, n):
    """11. smtpd_tls_ask_ccert on port 25: a client certificate whose
    fingerprint relay_clientcerts lists may relay (permit_tls_clientcerts);
    one that check_ccert_access maps to REJECT is refused; no certificate,
    no relaying."""
    with inst.smtp_client(inst.smtp) as c:
        c.ehlo("client.example")
        t = transaction(c, "carol@example.org", OUTSIDE, message("carol@example.org", OUTSIDE,
                                                                 "ccert", "s11a"))
        say(f"25 plain text, outside recipient: {t}")
        check(t["rcpt"] == REPLY_RELAY_DENIED, f"{n}: no TLS: {REPLY_RELAY_DENIED}")
    with inst.smtp_client(inst.smtp) as c:
        c.starttls(context=tls_context(inst.tmp))
        c.ehlo("client.example")
        t = transaction(c, "carol@example.org", OUTSIDE, message("carol@example.org", OUTSIDE,
                                                                 "ccert", "s11b"))
        say(f"25 TLS without a certificate, outside recipient: {t}")
        check(t["rcpt"] == REPLY_RELAY_DENIED, f"{n}: no certificate: {REPLY_RELAY_DENIED}")
    relay, local, code = relay_with_certificate(inst, "client", "s11c")
    check(relay == REPLY_RCPT_OK, f"{n}: a listed certificate may relay")
    check(local == REPLY_RCPT_OK, f"{n}: a listed certificate may send to alice")
    check(code == 250, f"{n}: DATA 250")
    with inst.smtp_client(inst.smtp) as c:
        c.starttls(context=client_cert_context(inst.tmp, "other"))
        c.ehlo("client.example")
        t = transaction(c, "carol@example.org", "alice@example.test",
                        message("carol@example.org", "alice@example.test", "ccert", "s11d"))
        say(f"25 TLS with OTHER's certificate: {t}")
        check(t["rcpt"] == REPLY_CCERT_REJECTED, f"{n}: check_ccert_access REJECT:"
              f" {REPLY_CCERT_REJECTED}")
    files = inst.wait_delivered(1)
    check(len(files) == 1, f"{n}: CLIENT's message in alice's Maildir")
    if files:
        got = normalize_received(received_headers(files[0])[0], inst)
        say("Received:", *("  " + l for l in got))
        want = [deviate(l) for l in RECEIVED_CCERT]
        check(got == want, f"{n}: the Received header names the client certificate as Postfix's")
    log = inst.wait_log(lambda l: sum("disconnect from" in x for x in l) >= 4)
    mine = [l.replace(inst.client_fp["client"], "CLIENT_FP").replace(inst.client_fp["other"],
                                                                      "OTHER_FP")
            for l in log if l.startswith("postfix/smtpd:") and ("TLS" in l or "reject" in l)
            # Postfix warns of the scenario's second smtpd_relay_restrictions.
            and "overriding earlier entry" not in l]
    say("log:", *("  " + l for l in mine))
    check(mine == EXPECTED_CCERT_LOG, f"{n}: TLS and reject lines as Postfix's")


def scenario_ccert_ca(inst, check, n):
    """12. smtpd_tls_CAfile: SIGNED's certificate is trusted (relays on 25
    through permit_tls_all_clientcerts; the Trusted log line, verified
    OK in Received); CLIENT's self-signed one is not. On 587
    (encrypt) smtpd_tls_req_ccert refuses a session without a trusted
    certificate."""
    relay, _, code = relay_with_certificate(inst, "signed", "s12a")
    check(relay == REPLY_RCPT_OK, f"{n}: a trusted certificate may relay")
    check(code == 250, f"{n}: DATA 250")
    with inst.smtp_client(inst.smtp) as c:
        c.starttls(context=client_cert_context(inst.tmp, "client"))
        c.ehlo("client.example")
        t = transaction(c, "carol@example.org", OUTSIDE, message("carol@example.org", OUTSIDE,
                                                                 "ca", "s12b"))
        say(f"25 TLS with CLIENT's self-signed certificate: {t}")
        check(t["rcpt"] == REPLY_RELAY_DENIED, f"{n}: an untrusted one may not relay")
    outcomes = {}
    for who in ("signed", "client", None):
        try:
            with inst.smtp_client(inst.submission) as c:
                ctx = client_cert_context(inst.tmp, who) if who else tls_context(inst.tmp)
                c.starttls(context=ctx)
                r = reply(c.ehlo("client.example"))
                outcomes[who] = r[0] if r[0] == 250 else r
        except (smtplib.SMTPException, OSError) as e:
            outcomes[who] = f"{type(e).__name__}: {e}"
        say(f"587 with {who}'s certificate: EHLO after STARTTLS: {outcomes[who]}")
    check(outcomes["signed"] == 250, f"{n}: 587 takes a trusted certificate")
    check(outcomes["client"] == REQ_CCERT_UNTRUSTED, f"{n}: 587 and an untrusted certificate:"
          f" {REQ_CCERT_UNTRUSTED}")
    check(outcomes[None] == REQ_CCERT_NONE, f"{n}: 587 and no certificate: {REQ_CCERT_NONE}")
    files = inst.wait_delivered(1)
    if files:
        got = normalize_received(received_headers(files[0])[0], inst)
        say("Received:", *("  " + l for l in got))
        check(got == [deviate(l) for l in RECEIVED_CCERT_CA],
              f"{n}: the Received header says the certificate was verified, as Postfix's")
    log = inst.wait_log(lambda l: sum("disconnect from" in x for x in l) >= 5)
    mine = [l for l in log if re.match(r"postfix/(submission/)?smtpd: (?!warning: TMP)", l)
            and ("TLS" in l or "reject" in l or "certificate" in l)]
    say("log:", *("  " + l for l in mine))
    check(mine == EXPECTED_CCERT_CA_LOG, f"{n}: TLS and reject lines as Postfix's")


REQ_CCERT_UNTRUSTED = (421, "4.7.1 mail.example.test Error: Client certificate not trusted")
REQ_CCERT_NONE = (421, "4.7.1 mail.example.test Error: No client certificate presented")
RECEIVED_CCERT_CA = [
    "Received: from client.example (unknown [127.0.0.1])",
    "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
    "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256",
    "\t client-signature ECDSA (prime256v1) client-digest SHA256)",
    "\t(Client CN \"signed.example\", Issuer \"Test CA\" (verified OK))",
    "\tby mail.example.test (Postfix) with ESMTPS id QID;",
    "\tDATE",
]
# Only the service that requires a certificate logs why it failed.
EXPECTED_CCERT_CA_LOG = [
    "postfix/smtpd: Trusted TLS connection established from unknown[127.0.0.1]: TLSv1.3 with cipher"
    " TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS"
    " (2048 bits) server-digest SHA256"
    " client-signature ECDSA (prime256v1) client-digest SHA256",
    "postfix/smtpd: Untrusted TLS connection established from unknown[127.0.0.1]: TLSv1.3 with cipher"
    " TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS"
    " (2048 bits) server-digest SHA256"
    " client-signature ECDSA (prime256v1) client-digest SHA256",
    "postfix/smtpd: NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1"
    " <someone@example.org>: Relay access denied; from=<carol@example.org>"
    " to=<someone@example.org> proto=ESMTP helo=<client.example>",
    "postfix/submission/smtpd: Trusted TLS connection established from unknown[127.0.0.1]: TLSv1.3 with cipher"
    " TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS"
    " (2048 bits) server-digest SHA256"
    " client-signature ECDSA (prime256v1) client-digest SHA256",
    "postfix/submission/smtpd: certificate verification failed for unknown[127.0.0.1]:"
    " self-signed certificate",
    "postfix/submission/smtpd: Untrusted TLS connection established from unknown[127.0.0.1]: TLSv1.3 with cipher"
    " TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS"
    " (2048 bits) server-digest SHA256"
    " client-signature ECDSA (prime256v1) client-digest SHA256",
    "postfix/submission/smtpd: NOQUEUE: abort: TLS from unknown[127.0.0.1]:"
    " Client certificate not trusted",
    "postfix/submission/smtpd: Anonymous TLS connection established from unknown[127.0.0.1]: TLSv1.3 with cipher"
    " TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS"
    " (2048 bits) server-digest SHA256",
    "postfix/submission/smtpd: NOQUEUE: abort: TLS from unknown[127.0.0.1]:"
    " No client certificate presented",
]


def scenario_login_warn(inst, check, n):
    """9. warn_if_reject before reject_sender_login_mismatch: the rejection
    is logged as reject_warning and the mail accepted."""
    with inst.smtp_client(inst.smtp) as c:
        c.starttls(context=tls_context(inst.tmp))
        c.ehlo("client.example")
        t = transaction(c, "alice@example.test", "alice@example.test",
                        message("alice@example.test", "alice@example.test", "warn", "s9"))
        say(f"25, alice's address, not logged in: {t}")
        check(t["rcpt"] == REPLY_RCPT_OK and t.get("data", (0,))[0] == 250,
              f"{n}: accepted under warn_if_reject")
    log = inst.wait_log(lambda l: any("disconnect from" in x for x in l))
    mine = [l for l in log if "reject" in l]
    say("log:", *("  " + l for l in mine))
    check(mine == EXPECTED_LOGIN_WARN_LOG, f"{n}: the reject_warning line as Postfix's")
    check(len(inst.wait_delivered(1)) == 1, f"{n}: delivered to alice's Maildir")


SCENARIOS = {
    "submission": (scenario_submission, "dovecot"),
    "smtps": (scenario_smtps, "dovecot"),
    "port25": (scenario_port25, "dovecot"),
    "injection": (scenario_injection, "dovecot"),
    "tools": (scenario_tools, "dovecot"),
    "log": (scenario_log, "dovecot"),
    "saslauthd": (scenario_cyrus, "saslauthd"),
    "saslauthd-sasldb": (scenario_cyrus, "saslauthd-sasldb"),
    "sasldb": (scenario_cyrus, "sasldb"),
    "login": (scenario_login, "dovecot"),
    "login-warn": (scenario_login_warn, "dovecot"),
    "login-nosasl": (scenario_login_nosasl, "dovecot"),
    "ccert": (scenario_ccert, "dovecot"),
    "ccert-ca": (scenario_ccert_ca, "dovecot"),
    # Rostfix only: its built-in type, checked as the cyrus ones are.
    "builtin": (scenario_cyrus, "rostfix"),
}


def run_scenario(name, bin_dir, check, keep):
    fn, sasl = SCENARIOS[name]
    print(f"-- {name}")
    if sasl == "rostfix" and SUBJECT == "postfix":
        print(f"skip  {name}: Rostfix's own smtpd_sasl_type")
        return
    need = {"saslauthd": (SASLAUTHD, IMAP_BIN),
            "saslauthd-sasldb": (SASLAUTHD, SASLPASSWD2, UNSHARE, SYSTEM_SASLDB),
            "sasldb": (SASLPASSWD2,)}.get(sasl, ())
    missing = [p for p in need if not os.path.exists(p)]
    if missing:
        print(f"skip  {name}: {', '.join(missing)} not installed"
              " (sasl2-bin, dovecot-imapd; scripts/deps installs them)")
        return
    failed_before = len(check.failures)
    inst = None
    try:
        inst = Instance(name, bin_dir, sasl)
        inst.start()
        fn(inst, check, name)
    except Exception as e:
        check(False, f"{name}: {type(e).__name__}: {e}")
    finally:
        if inst is not None:
            try:
                inst.stop()
            except Exception as e:
                check(False, f"{name}: stopping: {type(e).__name__}: {e}")
            failed = len(check.failures) > failed_before
            if failed and (VERBOSE or keep):
                for log in ("dovecot.log", "saslauthd.log"):
                    text = tail(os.path.join(inst.tmp, log))
                    if text.strip() and "No such file" not in text:
                        print(f"   {log}:\n" + "".join("     " + l for l in text.splitlines(True)))
            if keep and failed:
                print(f"   kept {inst.tmp}")
            else:
                shutil.rmtree(inst.tmp, ignore_errors=True)


def main(argv):
    global VERBOSE, SUBJECT
    VERBOSE = "-v" in argv
    keep = "--keep" in argv
    names = [a for a in argv if not a.startswith("-")] or list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            sys.exit(f"no scenario {n}; there are {', '.join(SCENARIOS)}")
    missing = [p for p in (DOVECOT, DOVEADM, SWAKS, OPENSSL) if not os.path.exists(p)]
    if missing:
        print(f"skip  submission: {', '.join(missing)} not installed "
              "(dovecot-core, swaks, openssl; scripts/deps installs them)")
        return 0
    subject, bin_dir = common.subject()
    if subject not in ("postfix", "rostfix"):
        sys.exit("SUBJECT must be postfix or rostfix")
    SUBJECT = subject
    if subject == "postfix" and os.geteuid() != 0:
        sys.exit("SUBJECT=postfix needs root (postfix start)")
    check = common.Checks()
    t0 = time.time()
    for n in names:
        run_scenario(n, bin_dir, check, keep)
    print(f"submission ({subject}): {len(check.failures)} failed checks in {time.time() - t0:.0f} s")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
