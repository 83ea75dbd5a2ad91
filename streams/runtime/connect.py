"""Reaching the broker: a bounded-time check that ends in one line a person can act on.

aiokafka, left alone, waits out its request timeout (40 s) on a listener that never answers and
then raises ``KafkaConnectionError: Unable to bootstrap from [...]`` with a traceback and an
unclosed client behind it. Every command that talks to Kafka checks the bootstrap addresses here
first, within ``connect_timeout_s``: a TCP connection to each address (so the cause names what
the operating system said: refused, unknown host, nothing answering), then one Kafka metadata
request through aiokafka's own client (so TLS and SASL settings are exercised too). The client is
always closed, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from aiokafka.client import AIOKafkaClient

from streams.config import Settings


class BrokerUnreachable(Exception):
    """The broker could not be reached; the message is one line naming the address and cause."""


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise BrokerUnreachable(f"broker address {item.strip()!r}: expected host:port")
        out.append((host.strip("[]"), int(port)))
    return out


async def _tcp_cause(host: str, port: int, timeout: float) -> str | None:
    """Why a TCP connection to ``host:port`` fails (None: it connects)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        return f"no answer within {timeout:g}s"
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror})"
    except OSError as exc:
        return os.strerror(exc.errno).lower() if exc.errno else str(exc).lower()
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def check_broker(settings: Settings) -> None:
    """Return when a bootstrap address answers Kafka metadata requests within
    ``settings.connect_timeout_s``; else raise :class:`BrokerUnreachable`."""
    timeout = settings.connect_timeout_s
    addresses = _addresses(settings.bootstrap)
    causes = await asyncio.gather(*(_tcp_cause(host, port, timeout) for host, port in addresses))
    if all(causes):
        where = ", ".join(f"{host}:{port} ({cause})" for (host, port), cause in zip(addresses, causes))
        raise BrokerUnreachable(f"cannot reach the Kafka broker at {where}; "
                                "check --bootstrap / ENGAGEMENT_BOOTSTRAP")
    client = AIOKafkaClient(**settings.kafka_client_options(), request_timeout_ms=int(timeout * 1000) + 1,
                            retry_backoff_ms=100)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
    except asyncio.TimeoutError:
        raise BrokerUnreachable(f"the broker at {settings.bootstrap} accepts connections but gave no Kafka "
                                f"answer within {timeout:g}s (is it a Kafka listener? security_protocol "
                                f"{settings.security_protocol})") from None
    except Exception as exc:  # aiokafka's errors carry the cause in their text
        raise BrokerUnreachable(f"the broker at {settings.bootstrap} refused the Kafka handshake: "
                                f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    finally:
        await client.close()


def ensure_broker(settings: Settings) -> None:
    """:func:`check_broker` for synchronous callers (the worker, before Faust starts)."""
    asyncio.run(check_broker(settings))
