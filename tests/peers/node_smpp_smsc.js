// An independent SMSC (npm smpp, "node-smpp") for Herald's SMPP client.
//
// Usage: node node_smpp_smsc.js SYSTEM_ID PASSWORD
// Listens on 127.0.0.1 (a free port), accepts binds with those credentials, answers submit_sm
// with a zero-padded hex message_id and, 50 ms later, sends a deliver_sm receipt (esm_class 4,
// receipt text + receipted_message_id + message_state). Writes one JSON line per event on stdout
// ({"event":"listening","port":N} first). Exits when stdin closes.
'use strict';
const smpp = require('smpp');

const [systemId, password] = process.argv.slice(2);
let nextId = 0xc0ffee;
const log = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const server = smpp.createServer((session) => {
  const onBind = (pdu) => {
    if (pdu.system_id !== systemId || pdu.password !== password) {
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      log({ event: 'bind_refused', command: pdu.command });
      session.close();
      return;
    }
    session.send(pdu.response({ system_id: 'NODESMSC' }));
    log({
      event: 'bind',
      command: pdu.command,
      system_type: pdu.system_type,
      interface_version: pdu.interface_version,
    });
  };
  session.on('bind_transceiver', onBind);
  session.on('bind_transmitter', onBind);
  session.on('bind_receiver', onBind);
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('submit_sm', (pdu) => {
    const id = (nextId++).toString(16).toUpperCase().padStart(10, '0');
    session.send(pdu.response({ message_id: id }));
    const sm = pdu.short_message;
    const text = typeof sm === 'string' ? sm : (sm && sm.message) || '';
    const udh = sm && sm.udh ? sm.udh.map((b) => Array.from(b)) : null;
    log({
      event: 'submit',
      id,
      dest: pdu.destination_addr,
      source: pdu.source_addr,
      data_coding: pdu.data_coding,
      esm_class: pdu.esm_class,
      registered_delivery: pdu.registered_delivery,
      text,
      udh,
    });
    if (pdu.registered_delivery) {
      setTimeout(() => {
        session.deliver_sm(
          {
            source_addr: pdu.destination_addr,
            destination_addr: pdu.source_addr,
            esm_class: 4,
            short_message:
              `id:${id} sub:001 dlvrd:001 submit date:2511250701 ` +
              'done date:2511250702 stat:DELIVRD err:000 text:',
            receipted_message_id: id,
            message_state: 2,
          },
          (resp) => log({ event: 'deliver_sm_resp', id, status: resp.command_status }),
        );
      }, 50);
    }
  });
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    log({ event: 'unbind' });
    session.close();
  });
  session.on('error', (e) => log({ event: 'error', message: String(e) }));
});

server.listen(0, '127.0.0.1', () => log({ event: 'listening', port: server.address().port }));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
