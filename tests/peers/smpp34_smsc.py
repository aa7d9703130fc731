"""An independent SMSC (PyPI smpp34, a Rust-core SMPP 3.4 server) for Herald's SMPP client.

Usage: smpp34_smsc.py PORT
Listens on 127.0.0.1:PORT, answers every submit_sm with a decimal message_id and sends a
deliver_sm receipt (esm_class 4, receipt text, receipted_message_id and message_state TLVs) to
the session that submitted. Writes one JSON line per event on stdout ({"event":"listening"}
first). Exits when stdin closes.
"""

import asyncio
import json
import sys

import smpp34


def log(**event):
    print(json.dumps(event, ensure_ascii=False), flush=True)


async def serve(port):
    server = smpp34.Server(host="127.0.0.1", port=port, system_id="PYSMSC")
    await server.start()
    log(event="listening", port=port)
    sessions = {}
    next_id = 7_000_000_001
    while True:
        ev = await server.next()
        if isinstance(ev, smpp34.Esme):
            sessions[ev.session_id] = ev
            log(event="bind", system_id=ev.system_id, can_receive=ev.can_receive)
        elif isinstance(ev, smpp34.SubmitSmEvent):
            message_id = str(next_id)
            next_id += 1
            ev.accept(message_id)
            log(
                event="submit",
                id=message_id,
                dest=ev.destination_addr,
                data_coding=ev.data_coding,
                esm_class=ev.esm_class,
                short_message=ev.short_message.hex(),
            )
            text = (
                f"id:{message_id} sub:001 dlvrd:001 submit date:2511250701 "
                "done date:2511250702 stat:DELIVRD err:000 text:"
            )
            resp = await sessions[ev.session_id].deliver_sm(
                source_addr=ev.destination_addr,
                destination_addr=ev.source_addr,
                esm_class=0x04,
                short_message=text.encode(),
                tlvs=[
                    smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, message_id.encode() + b"\0"),
                    smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([2])),
                ],
            )
            log(event="deliver_sm_resp", id=message_id, status=resp.command_status)
        elif isinstance(ev, smpp34.Unbound):
            sessions.pop(ev.session_id, None)
            log(event="unbound")


async def main():
    port = int(sys.argv[1])
    task = asyncio.create_task(serve(port))
    loop = asyncio.get_running_loop()
    # Stop when the test closes our stdin.
    await loop.run_in_executor(None, sys.stdin.read)
    task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
