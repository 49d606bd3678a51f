"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it receives."""

from __future__ import annotations

import random
import threading
from email import message_from_bytes, policy
from enum import StrEnum

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from tests.support.pgserver import free_port


class Recorder:
    def __init__(self, refuse: set[str] | None = None):
        self.messages: list = []
        self.connections = 0
        self.refuse = refuse or set()
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"


class SmtpServer:
    def __init__(self, refuse: set[str] | None = None):
        self.recorder = Recorder(refuse)
        self.port = free_port()
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


class Drop(StrEnum):
    """Where a DroppingSmtpServer cuts a transaction's connection."""

    RCPT = "rcpt"  # instead of answering RCPT: the message certainly did not arrive
    DATA_COMMAND = "data_command"  # instead of answering DATA with 354: it did not arrive
    AFTER_DATA = "after_data"  # after the whole text arrived, before the 250: it did arrive


class DroppingRecorder(Recorder):
    """Records what arrives and cuts some connections at RCPT, at DATA or after the text, chosen
    by a seeded draw per transaction; counts every cut so a test can tell what may have arrived."""

    def __init__(self, rate: float, seed: int = 7):
        super().__init__()
        self.rate = rate
        self.random = random.Random(seed)
        self.cuts: dict[Drop, int] = dict.fromkeys(Drop, 0)
        self.arrived: list[str] = []  # X-Nudge-Delivery of every message whose text arrived
        self.answer_lost: list[str] = []  # …of those whose 250 was never sent
        self.data_started: dict[str, int] = {}  # recipient → DATA phases begun (the text may follow)

    def draw(self) -> Drop | None:
        with self.lock:
            if self.random.random() >= self.rate:
                return None
            return self.random.choice(list(Drop))

    def cut(self, server, where: Drop) -> None:
        with self.lock:
            self.cuts[where] += 1
        server.transport.close()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        session.drop = self.draw()
        if session.drop == Drop.RCPT:
            self.cut(server, Drop.RCPT)
            return "421 closing"  # never reaches the client: the connection is gone
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(message)
            self.arrived.append(str(message["X-Nudge-Delivery"]))
        if getattr(session, "drop", None) == Drop.AFTER_DATA:
            with self.lock:
                self.answer_lost.append(str(message["X-Nudge-Delivery"]))
            self.cut(server, Drop.AFTER_DATA)
        return "250 Message accepted"


class _DroppingSMTP(SMTP):
    async def smtp_DATA(self, arg: str) -> None:
        recorder = self.event_handler
        if getattr(self.session, "drop", None) == Drop.DATA_COMMAND:
            recorder.cut(self, Drop.DATA_COMMAND)
            return
        if self.envelope is not None:
            with recorder.lock:
                for address in self.envelope.rcpt_tos:
                    recorder.data_started[address] = recorder.data_started.get(address, 0) + 1
        await super().smtp_DATA(arg)


class _DroppingController(Controller):
    def factory(self):
        return _DroppingSMTP(self.handler, **self.SMTP_kwargs)


class DroppingSmtpServer(SmtpServer):
    """A real SMTP server on 127.0.0.1 that drops `rate` of its transactions' connections."""

    def __init__(self, rate: float, seed: int = 7):
        self.recorder = DroppingRecorder(rate, seed)
        self.port = free_port()
        self.controller = _DroppingController(self.recorder, hostname="127.0.0.1", port=self.port)
