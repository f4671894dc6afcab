// Writes pre-generated y-websocket update messages for the load generator.
//
//   node gen-updates.mjs <clients> <messages per client> <out file> [payload chars]
//
// Client c is a Y.Doc with clientID 1000 + c that overwrites its own map key
// with a string of <payload> characters (default 64): "T", a 16-hex-digit slot
// for the send time, "|", padding. Each captured update is wrapped as a whole
// y-websocket sync message (0x00 messageSync, 0x02 update, varUint8Array).
//
// File (little-endian): u32 clients, u32 messages, then per client, in send
// order: u32 length, u32 offset of the 16-byte time slot, the message bytes.
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import fs from 'fs'

const [clients, perClient] = [Number(process.argv[2]), Number(process.argv[3])]
const out = process.argv[4]
const payload = Number(process.argv[5] ?? 64)
const slot = '0'.repeat(16)
const parts = []
const head = Buffer.alloc(8)
head.writeUInt32LE(clients, 0)
head.writeUInt32LE(perClient, 4)
parts.push(head)
for (let c = 0; c < clients; c++) {
  const doc = new Y.Doc()
  doc.clientID = 1000 + c
  const map = doc.getMap('m')
  let update = null
  doc.on('update', (u) => { update = u })
  for (let s = 0; s < perClient; s++) {
    const pad = `c${c}s${s}`.padEnd(payload - 18, '.')
    map.set(`k${c}`, 'T' + slot + '|' + pad)
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, 0)
    encoding.writeVarUint(e, 2)
    encoding.writeVarUint8Array(e, update)
    const msg = Buffer.from(encoding.toUint8Array(e))
    const at = msg.indexOf('T' + slot) + 1
    if (at <= 0) throw new Error('time slot not found')
    const rec = Buffer.alloc(8)
    rec.writeUInt32LE(msg.length, 0)
    rec.writeUInt32LE(at, 4)
    parts.push(rec, msg)
  }
}
fs.writeFileSync(out, Buffer.concat(parts))
