#!/usr/bin/env python3
"""SMTP connection caching of the smtp(8) client (postconf(5):
smtp_connection_cache_destinations, smtp_connection_cache_on_demand,
smtp_connection_cache_time_limit).

The subject (Rostfix, or Debian's Postfix with SUBJECT=postfix) relays
everything to `relayhost = [127.0.0.1]:PORT`, where an aiosmtpd server
(Debian's python3-aiosmtpd) counts the connections it accepts and the
messages it takes. Three instances, one per setting:

  destinations  smtp_connection_cache_destinations names the relay host:
                three messages sent one after the other (each delivered
                before the next is sent) go over one connection; after
                the cache time limit (2s) has passed, the next message
                needs a new one
  on-demand     the default (on demand): a burst of 30 messages from 10
                clients goes over fewer connections than messages
  off           smtp_connection_cache_on_demand = no and no destinations:
                every message of the same burst has its own connection

Every message must arrive, whatever the setting.

Usage: run.py [--keep]
"""

import os
import shutil
import smtplib
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import common  # noqa: E402


peer = common.load_test("peer")
mx = common.load_test("mx")

BURST_CLIENTS = 10
BURST_EACH = 3


class Sink:
    """An SMTP server that counts connections and messages."""

    def __init__(self):
        self.port = common.free_port()
        self.lock = threading.Lock()
        self.connections = 0
        self.messages = []

    def start(self):
        mx.debian_import("aiosmtpd")
        import aiosmtpd.controller as controller
        import aiosmtpd.smtp as smtp
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with sink.lock:
                    sink.messages.append(envelope.rcpt_tos[0])
                return "250 2.0.0 Ok: taken"

        class Server(smtp.SMTP):
            def connection_made(self, transport):
                with sink.lock:
                    sink.connections += 1
                super().connection_made(transport)

        class Controller(controller.Controller):
            def factory(self):
                return Server(self.handler, hostname="sink.example.net")

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        # The controller's own check that the server is up.
        with self.lock:
            self.connections = 0

    def stop(self):
        self.controller.stop()

    def counts(self):
        with self.lock:
            return self.connections, len(self.messages)


MAIN = """myhostname = relay.example.test
mydestination = localhost
mynetworks = 127.0.0.1/32
relayhost = [127.0.0.1]:{sink}
alias_maps =
smtp_connection_cache_time_limit = 2s
"""


def send(inst, rcpt):
    with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example",
                      timeout=30) as c:
        c.sendmail("sender@example.test", [rcpt],
                   f"From: sender@example.test\r\nSubject: {rcpt}\r\n\r\nHello.\r\n")


def wait_messages(sink, n, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if sink.counts()[1] >= n:
            return True
        time.sleep(0.05)
    return False


def burst(inst, tag):
    def client(i):
        for j in range(BURST_EACH):
            send(inst, f"{tag}{i}-{j}@example.net")
    threads = [threading.Thread(target=client, args=(i,)) for i in range(BURST_CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main(argv):
    keep = "--keep" in argv
    subject, bin_dir = common.subject()
    check = common.Checks()
    base = tempfile.mkdtemp(prefix="conncache-")
    os.chmod(base, 0o755)
    sinks, instances = [], []
    try:
        # destinations
        sink = Sink()
        sink.start()
        sinks.append(sink)
        inst = peer.Instance("destinations", bin_dir, base, MAIN.replace("{sink}", str(sink.port))
                             # A relay host as postconf(5) says: no [] or port.
                             + "smtp_connection_cache_destinations = 127.0.0.1\n")
        instances.append(inst)
        inst.start()
        for i in range(3):
            send(inst, f"one{i}@example.net")
            check(wait_messages(sink, i + 1), f"destinations: message {i + 1} arrived")
        connections, messages = sink.counts()
        check((connections, messages) == (1, 3),
              f"destinations: three messages one after the other over one connection "
              f"(connections, messages): got {(connections, messages)}")
        time.sleep(4)
        send(inst, "late@example.net")
        check(wait_messages(sink, 4), "destinations: the late message arrived")
        check(sink.counts() == (2, 4),
              f"destinations: after the time limit, a new connection: got {sink.counts()}")

        # on demand, and off
        for name, extra in (("on-demand", ""),
                            ("off", "smtp_connection_cache_on_demand = no\n")):
            sink = Sink()
            sink.start()
            sinks.append(sink)
            inst = peer.Instance(name, bin_dir, base,
                                 MAIN.replace("{sink}", str(sink.port)) + extra)
            instances.append(inst)
            inst.start()
            total = BURST_CLIENTS * BURST_EACH
            burst(inst, name)
            check(wait_messages(sink, total, 60), f"{name}: all {total} messages arrived")
            connections, messages = sink.counts()
            if name == "off":
                check(connections == messages,
                      f"{name}: one connection per message: {connections} for {messages}")
            else:
                check(connections < messages,
                      f"{name}: connections reused: {connections} for {messages}")
    finally:
        for inst in instances:
            inst.stop()
        for sink in sinks:
            sink.stop()
        if check.failures and keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"conncache ({subject}): {len(check.failures)} failed checks")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
