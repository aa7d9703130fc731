"""Drives PyPI `pycmpp` (an independent CMPP 2.0 client) against a CMPP gateway.

Usage: pycmpp_client.py HOST:PORT ACCOUNT SECRET DEST

Connects and logs in, submits a short message and a long one (pycmpp splits it and adds the UDH
itself), sends ACTIVE_TEST and TERMINATE, and prints one JSON line per step. pycmpp builds and
parses every PDU; this script only reads whole frames off the socket (pycmpp's own receive loop
never returns) and checks the answers. Exit code 0 means every step got the answer CMPP 2.0
prescribes.
"""

import json
import socket
import struct
import sys

from pycmpp.cmpp import Cmpp
from pycmpp.cmpp_defines import (
    CMPP_ACTIVE_TEST_RESP,
    CMPP_CONNECT_RESP,
    CMPP_SUBMIT_RESP,
    CMPP_TERMINATE_RESP,
)
from pycmpp.request import ActiveTestRequestInstance
from pycmpp.response import ConnectResponseInstance, SubmitResponseInstance

TIMEOUT_S = 10


def emit(**fields):
    print(json.dumps(fields, ensure_ascii=False), flush=True)


def fail(step, why):
    emit(step=step, ok=False, error=why)
    sys.exit(1)


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_frame(sock):
    header = read_exact(sock, 12)
    length, command_id, seq = struct.unpack("!LLL", header)
    if length < 12 or length > 4096:
        raise ValueError(f"bad Total_Length {length}")
    return command_id, seq, header + read_exact(sock, length - 12)


def expect(sock, step, command_id):
    """Reads frames until one with `command_id` arrives; anything else is reported and skipped."""
    while True:
        try:
            got, seq, frame = read_frame(sock)
        except Exception as e:  # noqa: BLE001 - any failure ends the run with its reason
            fail(step, f"{type(e).__name__}: {e}")
        if got == command_id:
            return frame
        emit(step=step, skipped=hex(got), seq=seq)


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    addr, account, secret, dest = sys.argv[1:]
    host, port = addr.rsplit(":", 1)
    client = Cmpp(host, int(port), account, secret, src_id="", client_heartbeat=False)
    client.so.settimeout(TIMEOUT_S)
    try:
        client.connect()
    except OSError as e:
        fail("connect", str(e))

    client.auth()
    resp = ConnectResponseInstance()
    resp.resolve(expect(client.so, "connect", CMPP_CONNECT_RESP))
    emit(step="connect", ok=resp.status == 0, status=resp.status, version=resp.version)
    if resp.status != 0:
        sys.exit(1)

    # pycmpp sends one SUBMIT for text under 70 characters, and 64-character UCS2 parts with a
    # UDH for longer text.
    long_text = "pycmpp 长短信测试，" * 8
    for step, text in (("submit", "hello from pycmpp 你好"), ("submit_long", long_text)):
        parts = 1 if len(text) < 70 else -(-len(text) // 64)
        client.submit(text, [dest])
        for part in range(parts):
            r = SubmitResponseInstance()
            r.resolve(expect(client.so, step, CMPP_SUBMIT_RESP))
            emit(step=step, part=part + 1, parts=parts, ok=r.status == 0, result=r.status,
                 msg_id=str(r.msg_id), seq=r.seq_id)
            if r.status != 0:
                sys.exit(1)

    client.send(ActiveTestRequestInstance().create())
    frame = expect(client.so, "active_test", CMPP_ACTIVE_TEST_RESP)
    emit(step="active_test", ok=True, body_len=len(frame) - 12)

    client.terminate()
    expect(client.so, "terminate", CMPP_TERMINATE_RESP)
    emit(step="terminate", ok=True)
    client.close()
    emit(step="done", ok=True)


if __name__ == "__main__":
    main()
