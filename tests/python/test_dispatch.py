"""The dispatcher of hosted Python services (mycelium/_hosting.py): its
fast path (a message object of the subscribed class, the common case in a
node that has the type compiled in) and its general path (TLV bytes) give
the same results: the same handler call, the same failure text with the
traceback, the same refusal of a coroutine without asyncio."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import link_test as lt
from mycelium import Service, _core, on
from mycelium._hosting import _Dispatcher


class FakeHandle:
    """What the dispatcher asks of a handle on these paths."""

    name = "disp"
    params: Dict[str, Any] = {}

    def __init__(self) -> None:
        self.failures: List[str] = []
        self.replies: List[Any] = []

    def fail(self, text: str) -> None:
        self.failures.append(text)

    def reply_error(self, request_id: int, text: str) -> None:
        self.replies.append((request_id, text))


class Recorder(Service):
    def __init__(self) -> None:
        self.seen: List[lt.chat] = []

    @on(lt.chat)
    def chat(self, c: lt.chat) -> Optional[int]:
        if c.origin == "raise":
            raise RuntimeError("failing on purpose")
        self.seen.append(c)
        return 7 if c.origin == "value" else None  # a value for a message is ignored

    @on(lt.ping)
    async def ping(self, p: lt.ping) -> None:
        pass


def dispatcher() -> _Dispatcher:
    svc = Recorder.__new__(Recorder)
    svc.seen = []
    return _Dispatcher(svc, FakeHandle(), False)


def event(msg: Any, as_bytes: bool) -> Any:
    return (_core.EVENT_MESSAGE, type(msg).type_id, 0, msg.encode() if as_bytes else msg, "")


def test_both_paths_call_the_handler_with_an_equal_message() -> None:
    for as_bytes in (False, True):
        d = dispatcher()
        m = lt.chat(origin="t", seq=3)
        assert d.event(event(m, as_bytes)) is None
        assert d.event(event(lt.chat(origin="value", seq=4), as_bytes)) is None
        svc: Any = d.svc
        assert svc.seen == [m, lt.chat(origin="value", seq=4)]
        assert d.handle.failures == [] and not d.failed


def test_both_paths_fail_the_instance_with_the_same_text() -> None:
    texts = []
    for as_bytes in (False, True):
        d = dispatcher()
        assert d.event(event(lt.chat(origin="raise", seq=1), as_bytes)) is None
        assert d.failed and len(d.handle.failures) == 1
        text = d.handle.failures[0]
        assert text.startswith("Python handler Recorder.chat(chat) of service 'disp' raised:\n")
        assert "Traceback" in text and "RuntimeError: failing on purpose" in text
        texts.append(text.splitlines()[0])
        # A failed instance handles nothing more.
        assert d.event(event(lt.chat(origin="t", seq=2), as_bytes)) is None
        svc: Any = d.svc
        assert svc.seen == []
    assert texts[0] == texts[1]


def test_both_paths_refuse_a_coroutine_without_asyncio() -> None:
    for as_bytes in (False, True):
        d = dispatcher()
        assert d.event(event(lt.ping(seq=1, payload=b""), as_bytes)) is None
        assert len(d.handle.failures) == 1
        assert "Recorder.ping(ping) of service 'disp' is a coroutine function, but the " \
               "service runs without asyncio" in d.handle.failures[0]
