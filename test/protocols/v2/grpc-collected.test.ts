/**
 * Large ModelInfer messages read into shared memory instead of by grpc-js
 * (src/protocols/v2/grpc-collected.ts): where the first raw contents start in a message's
 * beginning; and through a real server, messages that arrive in any pieces, side by side, cut
 * short, followed by a second one, or that look like the stand-in: each answered as it would
 * be otherwise, its memory given back.
 */
import type http2 from 'node:http2'
import t from 'tap'
import { keptMemoryBytes, SMALLEST_KEPT_BODY } from '../../../src/http/body-memory'
import { LOSSES } from '../../../src/losses'
import { HEADER_SCAN_BYTES } from '../../../src/protocols/v2/grpc-collected'
import { rawContentsStart } from '../../../src/protocols/v2/grpc-contents'
import { grpcApp, loadPackage, outputsOf, params } from './grpc'
import { announce, connect, framed, largeBodies, MiB, statusOf, until, varint } from './h2'
import { NO_SHEDDING } from './v2'

const serialize: (request: object) => Buffer = loadPackage().inference.GRPCInferenceService.service.ModelInfer.requestSerialize

/** A float32 array's bytes, as raw_input_contents carries them. */
const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)

/** mse over two [n] float32 tensors, reduction sum, as a ModelInferRequest; `id` pads the header. */
function mseRequest (x: Float32Array, y: Float32Array, id = ''): object {
  return {
    model_name: 'mse',
    id,
    parameters: params({ reduction: 'sum' }),
    inputs: [{ name: 'input', datatype: 'FP32', shape: [x.length] }, { name: 'target', datatype: 'FP32', shape: [y.length] }],
    raw_input_contents: [bytes(x), bytes(y)]
  }
}

/** The sum of squared differences, each difference rounded to float32 as the kernel computes it. */
function sumSquares (x: Float32Array, y: Float32Array): number {
  let sum = 0
  for (let i = 0; i < x.length; i++) sum += Math.fround(x[i] - y[i]) ** 2
  return sum
}

/** Two tensors of `n` floats, different for each `seed`. */
function pair (n: number, seed: number): [Float32Array, Float32Array] {
  return [Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed)), Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11 * seed))]
}

t.test('rawContentsStart: the offset of the first raw contents, found by skipping fields by their lengths', async t => {
  const x = new Float32Array([1.5, -2, 3, 4])
  const y = new Float32Array([7, 8, 9, 10])
  for (const id of ['', 'a', 'x'.repeat(300)]) {
    const message = serialize(mseRequest(x, y, id))
    const at = message.indexOf(bytes(x))
    t.equal(rawContentsStart(message), at, `id of ${id.length} characters: at byte ${at}`)
    // any beginning that stops short of those bytes does not tell yet
    const short = [0, 1, 2, at - 1].map(n => rawContentsStart(message.subarray(0, n)))
    t.same(short, ['more', 'more', 'more', 'more'], 'cut short: more is needed')
  }
  const typed = serialize({ model_name: 'mse', inputs: [{ name: 'input', datatype: 'FP32', shape: [2], contents: { fp32_contents: [1, 2] } }] })
  t.equal(rawContentsStart(typed), 'more', 'a whole message without raw contents: none found in it')
  // field 0; wire types 3, 4, 6 and 7; a varint of 9 bytes
  for (const bad of [[0x02, 0x00], [0x0b], [0x0c], [0x0e], [0x0f], [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]]) {
    t.equal(rawContentsStart(Buffer.from(bad)), undefined, `fields that do not parse: ${Buffer.from(bad).toString('hex')}`)
  }
  // a varint, a fixed64 and a fixed32 field (unknown ones) before the contents are skipped
  const head = Buffer.concat([Buffer.from([0x50, 0x96, 0x01]), Buffer.from([0x59]), Buffer.alloc(8), Buffer.from([0x65]), Buffer.alloc(4)])
  const message = Buffer.concat([head, Buffer.from([0x3a]), varint(3), Buffer.from('abc')])
  t.equal(rawContentsStart(message), head.length + 2, 'after unknown fields of every other wire type')
})

let s: Awaited<ReturnType<typeof grpcApp>>
t.before(async () => { s = await grpcApp(t, NO_SHEDDING, { losses: LOSSES.filter(d => d.name === 'mse') }) })

/** A ModelInfer sent over a raw stream in the pieces `cuts` makes (byte offsets of the framed message), each written on its own; the answer's status and message. */
async function sendInPieces (session: http2.ClientHttp2Session, frame: Buffer, cuts: number[]): Promise<{ headers: http2.IncomingHttpHeaders, message: Buffer }> {
  const stream = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers' })
  const chunks: Buffer[] = []
  stream.on('data', (c: Buffer) => chunks.push(c))
  const status = statusOf(stream)
  let from = 0
  for (const cut of [...cuts, frame.length]) {
    stream.write(frame.subarray(from, cut))
    from = cut
    await new Promise(resolve => setImmediate(resolve))
  }
  stream.end()
  const headers = await status
  return { headers, message: Buffer.concat(chunks).subarray(5) }
}

const deserialize: (bytes: Buffer) => any = loadPackage().inference.GRPCInferenceService.service.ModelInfer.responseDeserialize

/** The loss of an answer's raw output. */
const lossOf = (message: Buffer): number => new Float32Array(new Uint8Array(deserialize(message).raw_output_contents[0]).buffer)[0]

t.test('a large message in any pieces (its prefix and header split, or whole) is answered as computed here, its memory given back', async t => {
  const n = SMALLEST_KEPT_BODY / 4 // two tensors of 256 KiB: a message past the smallest kept size
  const [x, y] = pair(n, 1)
  const want = sumSquares(x, y)
  const frame = framed(serialize(mseRequest(x, y, 'split')))
  const session = connect(t, s.port)
  for (const cuts of [[], [3], [2, 4, 5, 6, 30, 61], [40, 1000, 70_000, 300_000]]) {
    const { headers, message } = await sendInPieces(session, frame, cuts)
    t.equal(headers['grpc-status'], '0', `cut at ${cuts.join(', ') || 'nothing'}: OK`)
    if (headers['grpc-status'] === '0') t.ok(Math.abs(lossOf(message) - want) <= 1e-5 * want, `cut at ${cuts.join(', ') || 'nothing'}: the loss`)
  }
  const kept = keptMemoryBytes()
  t.equal(kept.sharedInUse, 0, 'no shared memory left in use')
  t.ok(kept.shared >= 2 * n * 4, 'the messages\' memory kept for the next')
})

t.test('large calls side by side each get their own answer', async t => {
  const n = 80_000 // 640 kB a message
  const pairs = Array.from({ length: 6 }, (_, i) => pair(n, i + 2))
  const answers = await Promise.all(pairs.map(async ([x, y], i) => await s.call('ModelInfer', mseRequest(x, y, `call ${i}`))))
  answers.forEach((r, i) => {
    if (!r.ok) return t.fail(`call ${i}: ${r.error.details}`)
    const want = sumSquares(...pairs[i])
    const got = outputsOf(r.value).get('loss')?.data[0] as number
    t.ok(Math.abs(got - want) <= 1e-5 * want, `call ${i}: its own loss (${got} against ${want})`)
  })
  t.equal(keptMemoryBytes().sharedInUse, 0, 'no shared memory left in use')
})

t.test('a header longer than is looked through goes to grpc-js as before, and is answered the same', async t => {
  const [x, y] = pair(SMALLEST_KEPT_BODY / 4, 9)
  const r = await s.call('ModelInfer', mseRequest(x, y, 'h'.repeat(HEADER_SCAN_BYTES + 10)))
  if (!r.ok) return t.fail(r.error.details)
  const want = sumSquares(x, y)
  const got = outputsOf(r.value).get('loss')?.data[0] as number
  t.ok(Math.abs(got - want) <= 1e-5 * want, `the loss (${got} against ${want})`)
})

t.test('a large message cut short, or followed by a second, is refused as before; its memory goes back', async t => {
  const [x, y] = pair(SMALLEST_KEPT_BODY / 4, 3)
  const frame = framed(serialize(mseRequest(x, y)))
  const session = connect(t, s.port)
  const cut = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers' })
  cut.end(frame.subarray(0, frame.length - 10))
  const short = await statusOf(cut)
  t.equal(short['grpc-status'], '3', 'INVALID_ARGUMENT')
  t.equal(short['losshub-code'], 'INVALID_REQUEST')
  t.match(decodeURI(String(short['grpc-message'])), `the stream ended after ${frame.length - 10} bytes, short of the ${frame.length}`)
  const twice = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers' })
  twice.end(Buffer.concat([frame, frame.subarray(0, 100)]))
  const second = await statusOf(twice)
  t.equal(second['grpc-status'], '3', 'INVALID_ARGUMENT')
  t.match(decodeURI(String(second['grpc-message'])), 'a second request message')
  t.equal((await until(async () => keptMemoryBytes(), k => k.sharedInUse === 0)).sharedInUse, 0, 'no shared memory left in use')
})

t.test('a client that sends what a stand-in looks like (its token names no message) gets INVALID_ARGUMENT', async t => {
  const session = connect(t, s.port)
  const fake = Buffer.concat([Buffer.from('\x07losshub', 'latin1'), Buffer.from('00000000-0000-4000-8000-000000000000')])
  const stream = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers' })
  stream.end(framed(fake))
  const headers = await statusOf(stream)
  t.equal(headers['grpc-status'], '3', 'INVALID_ARGUMENT')
  t.equal(headers['losshub-code'], 'INVALID_REQUEST')
  t.match(decodeURI(String(headers['grpc-message'])), 'not a ModelInfer request message')
})

t.test('a large message that waits for its turn among large bodies takes no memory until then, and is answered after', async t => {
  const app = await grpcApp(t, { ...NO_SHEDDING, bodiesInProgressMb: 1, receiveTimeoutMs: 20000 }, { losses: LOSSES.filter(d => d.name === 'mse') })
  const session = connect(t, app.port)
  // A: 1 MiB announced, half of it sent: it takes the whole budget
  const a = announce(session, MiB, MiB / 2)
  await until(async () => await largeBodies(app.app), b => b.inProgress > 0)
  const inUse = keptMemoryBytes().sharedInUse
  // B: a real message of 640 kB, sent whole: it waits behind A
  const [x, y] = pair(80_000, 11)
  const b = sendInPieces(session, framed(serialize(mseRequest(x, y))), [])
  await until(async () => await largeBodies(app.app), v => v.waiting > 0)
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(keptMemoryBytes().sharedInUse, inUse, 'no shared memory taken for B while it waits')
  a.end(Buffer.alloc(MiB / 2))
  t.equal((await statusOf(a))['grpc-status'], '5', 'A answered (NOT_FOUND: it names no model)')
  const { headers, message } = await b
  t.equal(headers['grpc-status'], '0', 'then B: OK')
  const want = sumSquares(x, y)
  if (headers['grpc-status'] === '0') t.ok(Math.abs(lossOf(message) - want) <= 1e-5 * want, 'B\'s loss')
  t.equal(keptMemoryBytes().sharedInUse, 0, 'no shared memory left in use')
})
