"""The few pieces of the DNS wire format (RFC 1035) an embedded resolver needs."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN = 0, 1, 2, 3
TTL = 600  # Docker's embedded DNS answers with ten minutes


@dataclass(frozen=True)
class Question:
    id: int
    flags: int
    name: str        # lower case, without the trailing dot
    qtype: int
    qclass: int
    raw: bytes       # the question section as sent, echoed in the answer


class Malformed(ValueError):
    pass


def parse_query(packet: bytes) -> Question:
    if len(packet) < 12:
        raise Malformed("short header")
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount != 1:
        raise Malformed("not a single-question query")
    labels, pos = [], 12
    while True:
        if pos >= len(packet):
            raise Malformed("truncated name")
        length = packet[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            raise Malformed("compressed question name")
        labels.append(packet[pos:pos + length].decode("ascii", "replace"))
        pos += length
    if pos + 4 > len(packet):
        raise Malformed("truncated question")
    qtype, qclass = struct.unpack("!HH", packet[pos:pos + 4])
    return Question(qid, flags, ".".join(labels).lower(), qtype, qclass, packet[12:pos + 4])


def answer(q: Question, addresses: list[str], rcode: int = NOERROR) -> bytes:
    """A response: A records for `addresses` (the caller matched the type)."""
    # QR, the query's opcode and RD, RA; not authoritative, as Docker's.
    flags = 0x8000 | (q.flags & 0x7900) | 0x0080 | rcode
    out = [struct.pack("!HHHHHH", q.id, flags, 1, len(addresses), 0, 0), q.raw]
    for address in addresses:
        out.append(struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4))
        out.append(ipaddress.IPv4Address(address).packed)
    return b"".join(out)


def error(packet: bytes, rcode: int) -> bytes:
    """A bare error response to whatever could be read of a query."""
    qid = struct.unpack("!H", packet[:2])[0] if len(packet) >= 2 else 0
    return struct.pack("!HHHHHH", qid, 0x8080 | rcode, 0, 0, 0, 0)
