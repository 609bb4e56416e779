/**
 * The bounds on gRPC requests while they arrive (src/protocols/v2/grpc-streams.ts), driven
 * with raw HTTP/2 streams so that a message can be sent in parts, or not at all.
 */
import http from 'node:http'
import http2 from 'node:http2'
import { once } from 'node:events'
import zlib from 'node:zlib'
import * as grpc from '@grpc/grpc-js'
import t from 'tap'
import { LosshubError } from '../../../src/errors'
import { LOSSES } from '../../../src/losses'
import { FLOW_CONTROL_WINDOW } from '../../../src/protocols/v2/grpc-streams'
import { grpcApp, loadPackage, typedInput } from './grpc'
import { announce, connect, framed, largeBodies, MiB, statusOf, until, varint } from './h2'
import { NO_SHEDDING } from './v2'

const MSE = { losses: LOSSES.filter(d => d.name === 'mse') }

t.test('HTTP/2 flow-control windows of 8 MiB: a large tensor is not sent 64 KiB per round trip', async t => {
  const s = await grpcApp(t, NO_SHEDDING, MSE)
  const session = connect(t, s.port)
  // the first SETTINGS frame has Node's defaults, the next one the server's windows (bounded wait)
  const settings = await new Promise<http2.Settings | undefined>(resolve => {
    session.on('remoteSettings', (r: http2.Settings) => { if (r.initialWindowSize !== 65535) resolve(r) })
    setTimeout(() => resolve(undefined), 5000).unref()
  })
  t.equal(settings?.initialWindowSize, 8 * MiB, 'the server\'s per-stream window')
})

t.test('a request not whole within RECEIVE_TIMEOUT_MS: DEADLINE_EXCEEDED with RECEIVE_TIMEOUT, its stream closed; at most 256 calls a connection', async t => {
  const slow = await grpcApp(t, { ...NO_SHEDDING, receiveTimeoutMs: 1000, headersTimeoutMs: 1000 }, MSE)
  const session = connect(t, slow.port)
  const settings = await new Promise<http2.Settings>(resolve => session.once('remoteSettings', resolve))
  t.equal(settings.maxConcurrentStreams, 256, 'the server allows 256 streams at once on a connection')
  // a message below the large-body size (its pace is not watched) that announces 100 KiB and sends 10 bytes of it, then nothing
  const stream = announce(session, 100 * 1024, 10)
  const headers = await statusOf(stream)
  t.equal(headers['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED))
  t.equal(headers['losshub-code'], 'RECEIVE_TIMEOUT')
  t.equal(decodeURI(String(headers['grpc-message'])), 'RECEIVE_TIMEOUT: request: not received within RECEIVE_TIMEOUT_MS (1000 ms)')
  await once(stream, 'close')
  t.equal(stream.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'and the stream is closed under the client, which was still sending')
  // a request that arrives in time is served as ever, however long its call then takes
  const ok = await slow.call('ModelInfer', { model_name: 'mse', inputs: [typedInput('input', { dtype: 'float32', shape: [2], data: [1, 2] }), typedInput('target', { dtype: 'float32', shape: [2], data: [0, 0] })] })
  t.equal(ok.ok, true)
})

t.test('a large message waits, unread, for its turn among the large bodies in progress, HTTP\'s among them', async t => {
  const s = await grpcApp(t, { ...NO_SHEDDING, bodiesInProgressMb: 1, receiveTimeoutMs: 20000 }, MSE)
  await s.app.listen({ port: 0, host: '127.0.0.1' })
  const session = connect(t, s.port)
  // A: 1 MiB announced, half of it sent: it takes the whole budget
  const a = announce(session, MiB, MiB / 2)
  t.same(await until(async () => await largeBodies(s.app), b => b.inProgress > 0), { inProgress: MiB + 5, waiting: 0 }, 'A is in progress')
  const answered: string[] = []
  // B: a whole 600 KiB message, and C: a 600 KiB /loss body, wait behind A
  const b = announce(session, 600 * 1024, 600 * 1024)
  b.end()
  const bStatus = statusOf(b).then(h => { answered.push('B'); return h })
  const body = `{"input":[3],"target":[1]${' '.repeat(600 * 1024)}}`
  const port = (s.app.server.address() as { port: number }).port
  const c = new Promise<{ status: number, body: string }>((resolve, reject) => {
    const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/loss/mse', headers: { 'content-type': 'application/json', 'content-length': body.length } }, res => {
      let text = ''
      res.setEncoding('utf8').on('data', d => { text += d }).on('end', () => { answered.push('C'); resolve({ status: res.statusCode ?? 0, body: text }) })
    })
    req.on('error', reject)
    req.end(body)
  })
  // B counts as the flow-control window it may fill while it waits, C as its body
  const waiting = FLOW_CONTROL_WINDOW + Buffer.byteLength(body)
  t.same(await until(async () => await largeBodies(s.app), v => v.waiting === waiting), { inProgress: MiB + 5, waiting }, 'B and C wait')
  await new Promise(resolve => setTimeout(resolve, 200))
  t.same(answered, [], 'neither is answered while A is in progress')
  // the rest of A; once it is answered (no model named: NOT_FOUND), B and C go ahead
  a.end(Buffer.alloc(MiB / 2))
  const aStatus = await statusOf(a)
  answered.push('A')
  t.equal(aStatus['grpc-status'], String(grpc.status.NOT_FOUND), 'A is read whole and answered')
  t.equal((await bStatus)['grpc-status'], String(grpc.status.NOT_FOUND), 'then B')
  t.same(await c, { status: 200, body: '{"loss":4}' }, 'and C: (3 - 1)^2')
  t.equal(answered[0], 'A', 'A first')
  t.same(await until(async () => await largeBodies(s.app), v => v.inProgress === 0), { inProgress: 0, waiting: 0 }, 'every turn given back')
})

t.test('a prefix that arrives in parts is read whole: the message still takes its turn', async t => {
  const s = await grpcApp(t, { ...NO_SHEDDING, bodiesInProgressMb: 1, receiveTimeoutMs: 20000 }, MSE)
  const session = connect(t, s.port)
  const stream = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers' })
  const prefix = Buffer.alloc(5)
  prefix.writeUInt32BE(MiB, 1)
  for (const part of [prefix.subarray(0, 2), prefix.subarray(2, 4), Buffer.concat([prefix.subarray(4), Buffer.alloc(1000)])]) {
    stream.write(part)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  t.same(await until(async () => await largeBodies(s.app), v => v.inProgress > 0), { inProgress: MiB + 5, waiting: 0 }, 'in progress, by the length its prefix declares')
  stream.close()
  t.same(await until(async () => await largeBodies(s.app), v => v.inProgress === 0), { inProgress: 0, waiting: 0 }, 'its turn given back when the client cancels')
})

t.test('a large message past the line of waiting bodies (QUEUE_MAX_MB): UNAVAILABLE with OVERLOADED and a retry pushback, at once', async t => {
  const s = await grpcApp(t, { ...NO_SHEDDING, bodiesInProgressMb: 1, queueMaxMb: 1, receiveTimeoutMs: 20000 }, MSE)
  const session = connect(t, s.port)
  announce(session, MiB, 1000)
  await until(async () => await largeBodies(s.app), v => v.inProgress > 0)
  announce(session, 600 * 1024, 1000) // an empty line takes any body
  await until(async () => await largeBodies(s.app), v => v.waiting > 0)
  const started = Date.now()
  const refused = announce(session, 600 * 1024, 1000)
  const headers = await statusOf(refused)
  t.ok(Date.now() - started < 1000, 'answered before it is sent')
  t.equal(headers['grpc-status'], String(grpc.status.UNAVAILABLE))
  t.equal(headers['losshub-code'], 'OVERLOADED')
  t.equal(headers['retry-after'], '1')
  t.equal(headers['grpc-retry-pushback-ms'], '1000')
  t.equal(decodeURI(String(headers['grpc-message'])), 'OVERLOADED: overloaded: 8.0 MiB of request bodies wait to be read and this one brings 0.6 MiB (8.0 MiB while it waits: the HTTP/2 window it may fill here) (QUEUE_MAX_MB); retry')
  t.match((await s.app.inject('/metrics')).body, /^losshub_requests_total\{protocol="grpc",loss="unknown",status="503"\} 1$/m, 'counted as a 503')
})

t.test('a large message that stalls: DEADLINE_EXCEEDED with RECEIVE_TIMEOUT within seconds, long before RECEIVE_TIMEOUT_MS, and its turn given back', async t => {
  const s = await grpcApp(t, { ...NO_SHEDDING, bodiesInProgressMb: 1, receiveTimeoutMs: 20000 }, MSE)
  const session = connect(t, s.port)
  const started = Date.now()
  const stream = announce(session, MiB, 100 * 1024)
  const headers = await statusOf(stream)
  const ms = Date.now() - started
  t.ok(ms >= 2000 && ms < 6000, `answered after the stall time, ${ms} ms`)
  t.equal(headers['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED))
  t.equal(headers['losshub-code'], 'RECEIVE_TIMEOUT')
  t.match(decodeURI(String(headers['grpc-message'])), /^RECEIVE_TIMEOUT: request: 102405 of 1048581 bytes arrived in \d+\.\d s, none in the last 2\.0 s or more: the upload stalled$/)
  await once(stream, 'close')
  t.equal(stream.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'its stream closed under the client')
  t.same(await until(async () => await largeBodies(s.app), v => v.inProgress === 0), { inProgress: 0, waiting: 0 }, 'its turn given back')
})

t.test('a compressed message takes its turn by what it could inflate to', async t => {
  const s = await grpcApp(t, { ...NO_SHEDDING, receiveTimeoutMs: 20000 }, MSE)
  const session = connect(t, s.port)
  // 1,000 bytes of gzip could be 1,032,000 once inflated (deflate's limit, 1032:1)
  announce(session, 1000, 10, undefined, 1)
  t.same(await until(async () => await largeBodies(s.app), v => v.inProgress > 0), { inProgress: 1005 * 1032, waiting: 0 })
})

t.test('a stream answered while its request arrives holds no turn: an unknown method, a health Watch', async t => {
  const s = await grpcApp(t, { ...NO_SHEDDING, receiveTimeoutMs: 20000 }, MSE)
  const session = connect(t, s.port)
  // grpc-js answers an unknown method at once; the client goes on declaring 5 MiB
  const unknown = announce(session, 5 * MiB, 0, '/no.Such/Method')
  const answer = await statusOf(unknown)
  t.equal(answer['grpc-status'], String(grpc.status.UNIMPLEMENTED))
  t.equal(answer['losshub-code'], 'NOT_FOUND', 'coded as REST codes an unknown route')
  await once(unknown, 'close')
  t.equal(unknown.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'reset under the client, which was still sending')
  // a Watch request padded to 300 KiB with an unknown field (2): its turn is given back once it is read, though the Watch goes on
  const padding = 300 * 1024
  const message = Buffer.concat([Buffer.from([0x12]), varint(padding), Buffer.alloc(padding)])
  const watch = announce(session, message.length, 0, '/grpc.health.v1.Health/Watch')
  watch.end(message)
  const serving = await new Promise<Buffer>(resolve => { watch.once('data', resolve) })
  t.ok(serving.length > 5, 'the Watch reports')
  t.same(await until(async () => await largeBodies(s.app), v => v.inProgress === 0), { inProgress: 0, waiting: 0 }, 'no turn held while the Watch is open')
  t.notOk(watch.closed, 'the Watch is still open')
})

t.test('a large message that arrives whole but whose stream does not end: RECEIVE_TIMEOUT once the stall time has passed', async t => {
  const s = await grpcApp(t, { ...NO_SHEDDING, receiveTimeoutMs: 20000 }, MSE)
  const session = connect(t, s.port)
  const started = Date.now()
  const stream = announce(session, 300 * 1024, 300 * 1024)
  const headers = await statusOf(stream)
  const ms = Date.now() - started
  t.ok(ms >= 2000 && ms < 6000, `answered after the stall time, ${ms} ms`)
  t.equal(decodeURI(String(headers['grpc-message'])), 'RECEIVE_TIMEOUT: request: the message arrived whole, but its stream did not end (END_STREAM) within 2.0 s')
})

t.test('a ModelInfer counts as in flight from its stream\'s start: one waiting its turn when draining begins is served, a new one refused', async t => {
  const s = await grpcApp(t, { ...NO_SHEDDING, bodiesInProgressMb: 1, receiveTimeoutMs: 20000 }, MSE)
  const session = connect(t, s.port)
  const a = announce(session, MiB, 1000)
  await until(async () => await largeBodies(s.app), v => v.inProgress > 0)
  // B: a whole mse request of 40,000 float32 pairs (320 KB), waiting behind A
  const n = 40_000
  const serialize = loadPackage().inference.GRPCInferenceService.service.ModelInfer.requestSerialize
  const message: Buffer = serialize({
    model_name: 'mse',
    parameters: { reduction: { string_param: 'sum' } },
    inputs: [{ name: 'input', datatype: 'FP32', shape: [n] }, { name: 'target', datatype: 'FP32', shape: [n] }],
    raw_input_contents: [Buffer.from(new Float32Array(n).fill(3).buffer), Buffer.from(new Float32Array(n).fill(1).buffer)]
  })
  const b = announce(session, message.length, 0)
  b.end(message)
  await until(async () => await largeBodies(s.app), v => v.waiting > 0)
  t.equal(s.app.losshub.active, 2, 'A and B are in flight')
  s.app.losshub.refusing = true
  const refused = await statusOf(announce(session, 10, 0))
  t.equal(refused['losshub-code'], 'SHUTTING_DOWN', 'a call that starts now is refused')
  a.close()
  const served = await statusOf(b)
  t.equal(served['grpc-status'], '0', 'B, which started before, is served')
  t.equal(await until(async () => s.app.losshub.active, v => v === 0), 0, 'and nothing is left in flight')
})

t.test('one request message a call: a second is refused as it begins, before grpc-js buffers it; one alone is served', async t => {
  const s = await grpcApp(t, NO_SHEDDING, MSE)
  const session = connect(t, s.port)
  const serialize = loadPackage().inference.GRPCInferenceService.service.ModelInfer.requestSerialize
  const request: Buffer = serialize({ model_name: 'mse', inputs: [typedInput('input', { dtype: 'float32', shape: [1], data: [1] }), typedInput('target', { dtype: 'float32', shape: [1], data: [0] })] })
  // an empty first message, then a second announcing 40 MiB
  const second = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers' })
  const big = Buffer.alloc(5)
  big.writeUInt32BE(40 * MiB, 1)
  second.write(Buffer.concat([framed(Buffer.alloc(0)), big]))
  const refused = await statusOf(second)
  t.equal(refused['grpc-status'], String(grpc.status.INVALID_ARGUMENT))
  t.equal(decodeURI(String(refused['grpc-message'])), 'INVALID_REQUEST: request: a second request message after the first (0 bytes); ModelInfer takes exactly one')
  const one = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers' })
  one.end(framed(request))
  t.equal((await statusOf(one))['grpc-status'], '0', 'the message alone is served')
})

/** A whole mse ModelInfer of `n` float32 pairs (sum of (3 - 1)^2 = 4n), serialized. */
function mseMessage (n: number): Buffer {
  const serialize = loadPackage().inference.GRPCInferenceService.service.ModelInfer.requestSerialize
  return serialize({
    model_name: 'mse',
    parameters: { reduction: { string_param: 'sum' } },
    inputs: [{ name: 'input', datatype: 'FP32', shape: [n] }, { name: 'target', datatype: 'FP32', shape: [n] }],
    raw_input_contents: [Buffer.from(new Float32Array(n).fill(3).buffer), Buffer.from(new Float32Array(n).fill(1).buffer)]
  })
}

t.test('grpc-js sees no byte of a message before its turn: a compressed one whole in one frame waits, then is served', async t => {
  const s = await grpcApp(t, { ...NO_SHEDDING, bodiesInProgressMb: 1, receiveTimeoutMs: 20000 }, MSE)
  const session = connect(t, s.port)
  const a = announce(session, MiB, 1000)
  await until(async () => await largeBodies(s.app), v => v.inProgress > 0)
  // 40,000 pairs of 3 and 1 gzip to a few KB, which could inflate to more than the 1 MiB budget
  const gz = zlib.gzipSync(mseMessage(40_000))
  const b = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers', 'grpc-encoding': 'gzip' })
  const prefix = Buffer.alloc(5)
  prefix.writeUInt8(1, 0)
  prefix.writeUInt32BE(gz.length, 1)
  b.end(Buffer.concat([prefix, gz]))
  let answered = false
  const status = statusOf(b).then(h => { answered = true; return h })
  await until(async () => await largeBodies(s.app), v => v.waiting > 0)
  await new Promise(resolve => setTimeout(resolve, 300))
  t.notOk(answered, 'not evaluated while it waits')
  a.close()
  t.equal((await status)['grpc-status'], '0', 'served once its turn comes')
})

t.test('an answer the client does not take: the turn and the call end when it is answered; its stream is cancelled RECEIVE_TIMEOUT_MS later', async t => {
  const s = await grpcApp(t, { ...NO_SHEDDING, receiveTimeoutMs: 1000, headersTimeoutMs: 1000 }, MSE)
  // a client that gives the server no window to send in
  const session = http2.connect(`http://127.0.0.1:${s.port}`, { settings: { initialWindowSize: 0 } })
  session.on('error', () => {})
  t.teardown(() => session.destroy())
  const stream = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers' })
  stream.end(framed(mseMessage(40_000)))
  const [headers] = await once(stream, 'response') as [http2.IncomingHttpHeaders]
  const answeredAt = Date.now()
  t.equal(headers[':status'], 200, 'the answer has begun')
  t.same(await until(async () => await largeBodies(s.app), v => v.inProgress === 0), { inProgress: 0, waiting: 0 }, 'its turn is given back')
  t.equal(await until(async () => s.app.losshub.active, v => v === 0), 0, 'and it is no longer in flight')
  await once(stream, 'close')
  const ms = Date.now() - answeredAt
  t.equal(stream.rstCode, http2.constants.NGHTTP2_CANCEL, `cancelled ${ms} ms after the answer began`)
  t.ok(ms >= 900 && ms < 3000)
})

t.test('a shutdown\'s last word: a call whose message still arrives is answered UNAVAILABLE (SHUTTING_DOWN, with a retry pushback); a whole one is not touched', async t => {
  const s = await grpcApp(t, NO_SHEDDING, MSE)
  const session = connect(t, s.port)
  const arriving = announce(session, 100 * 1024, 10)
  const serialize = loadPackage().inference.GRPCInferenceService.service.ModelInfer.requestSerialize
  const whole = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers' })
  whole.end(framed(serialize({ model_name: 'mse', inputs: [typedInput('input', { dtype: 'float32', shape: [1], data: [3] }), typedInput('target', { dtype: 'float32', shape: [1], data: [1] })] })))
  t.equal((await statusOf(whole))['grpc-status'], '0', 'the whole call is served')
  await until(async () => s.app.losshub.active, n => n === 1)
  s.app.losshub.grpc.refuseArrivingCalls(new LosshubError('SHUTTING_DOWN', 'out of time', 1))
  const answer = await statusOf(arriving)
  t.equal(answer['grpc-status'], String(grpc.status.UNAVAILABLE))
  t.equal(answer['losshub-code'], 'SHUTTING_DOWN')
  t.equal(answer['grpc-retry-pushback-ms'], '1000')
})
