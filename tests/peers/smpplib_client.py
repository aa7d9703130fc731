"""An independent SMPP client (PyPI smpplib) against Herald's SMPP simulator.

Usage: smpplib_client.py HOST:PORT SYSTEM_ID PASSWORD

1. bind_transceiver, submit a short GSM message and a long (concatenated) one with
   registered_delivery, and wait for a receipt for every submit_sm_resp message_id;
2. bind_transmitter, submit one message, unbind; then bind_receiver and wait for its receipt
   (the simulator queues it until a receiver binds);
3. a bind with a wrong password must be refused.

Prints one JSON line ("RESULT {...}") and exits 0 when every receipt matched, 1 otherwise.
"""

import json
import re
import socket
import sys
import time

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

DEADLINE_S = 20

TEXTS = [
    "Hello from smpplib {ok} 100€",
    "Long message from smpplib. " * 8,
]


def as_text(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value or ""


def receipt_id(pdu):
    """The receipted_message_id TLV, else the id: of the receipt text."""
    tlv = as_text(getattr(pdu, "receipted_message_id", None)).rstrip("\0")
    if tlv:
        return tlv
    m = re.search(r"(?:^|\s)id:(\S+)", as_text(pdu.short_message), re.IGNORECASE)
    return m.group(1) if m else None


def new_client(addr):
    host, port = addr.rsplit(":", 1)
    return smpplib.client.Client(host, int(port), timeout=2, allow_unknown_opt_params=True)


def read_until(client, done):
    """Reads PDUs until done() or the deadline."""
    end = time.monotonic() + DEADLINE_S
    while not done():
        if time.monotonic() > end:
            raise TimeoutError("deadline passed")
        try:
            client.read_once()
        except socket.timeout:
            pass


def submit(client, text, dest):
    parts, encoding, esm_class = smpplib.gsm.make_parts(text)
    pdus = []
    for part in parts:
        pdus.append(
            client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                source_addr_npi=smpplib.consts.SMPP_NPI_UNK,
                source_addr="PyPeer",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr=dest,
                short_message=part,
                data_coding=encoding,
                esm_class=esm_class,
                registered_delivery=True,
            )
        )
    return pdus


def transceiver_round(addr, system_id, password, result):
    client = new_client(addr)
    sent, receipts = {}, {}
    client.set_message_sent_handler(
        lambda pdu: sent.__setitem__(pdu.sequence, as_text(pdu.message_id).rstrip("\0"))
    )

    def on_receipt(pdu):
        receipts[receipt_id(pdu)] = as_text(pdu.short_message)

    client.set_message_received_handler(on_receipt)
    client.connect()
    client.bind_transceiver(system_id=system_id, password=password)
    submitted = []
    for i, text in enumerate(TEXTS):
        submitted += submit(client, text, "4477009000%02d" % i)
    read_until(client, lambda: len(sent) == len(submitted))
    ids = set(sent.values())
    read_until(client, lambda: ids <= set(receipts))
    client.unbind()
    client.disconnect()
    result["transceiver_ids"] = sorted(ids)
    result["transceiver_receipts"] = {i: receipts[i] for i in ids}
    return len(ids) == len(submitted) and all("stat:" in receipts[i] for i in ids)


def transmitter_then_receiver(addr, system_id, password, result):
    tx = new_client(addr)
    sent = {}
    tx.set_message_sent_handler(
        lambda pdu: sent.__setitem__(pdu.sequence, as_text(pdu.message_id).rstrip("\0"))
    )
    tx.connect()
    tx.bind_transmitter(system_id=system_id, password=password)
    submit(tx, "Queued until a receiver binds", "447700900099")
    read_until(tx, lambda: len(sent) == 1)
    tx.unbind()
    tx.disconnect()
    (message_id,) = sent.values()

    rx = new_client(addr)
    receipts = {}
    rx.set_message_received_handler(
        lambda pdu: receipts.__setitem__(receipt_id(pdu), as_text(pdu.short_message))
    )
    rx.connect()
    rx.bind_receiver(system_id=system_id, password=password)
    read_until(rx, lambda: message_id in receipts)
    rx.unbind()
    rx.disconnect()
    result["receiver_id"] = message_id
    return True


def wrong_password_refused(addr, system_id, result):
    client = new_client(addr)
    client.connect()
    try:
        client.bind_transceiver(system_id=system_id, password="wrong")
    except smpplib.exceptions.PDUError as e:
        result["wrong_password_status"] = e.args[1] if len(e.args) > 1 else None
        return True
    finally:
        client.disconnect()
    return False


def main():
    addr, system_id, password = sys.argv[1:4]
    result = {}
    ok = True
    for name, step in [
        ("transceiver", lambda: transceiver_round(addr, system_id, password, result)),
        ("receiver", lambda: transmitter_then_receiver(addr, system_id, password, result)),
        ("wrong_password", lambda: wrong_password_refused(addr, system_id, result)),
    ]:
        try:
            passed = step()
        except Exception as e:  # noqa: BLE001 - report every failure in the result line
            result[name + "_error"] = repr(e)
            passed = False
        result[name] = passed
        ok = ok and passed
    print("RESULT " + json.dumps(result, ensure_ascii=False), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
