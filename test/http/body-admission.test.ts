import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { BodyAdmission, Pace, PACE_CHECK_MS, PACE_GRACE_MS, PACE_STALL_MS } from '../../src/http/body-admission'
import { listening } from '../helpers/app'
import { fromForm } from '../helpers/tensors'

t.test('large bodies start in order within the budget; each one that ends lets the next in', async t => {
  const admission = new BodyAdmission(100, 10, 150)
  const started: string[] = []
  const enter = (name: string, bytes: number): (() => void) | undefined => admission.enter(bytes, () => started.push(name))
  const small = enter('small', 9)
  const a = enter('a', 60)
  const b = enter('b', 40)
  t.same(started, ['small', 'a', 'b'], 'within the budget, and small bodies always, at once')
  const c = enter('c', 50)
  const d = enter('d', 5)
  t.same(started, ['small', 'a', 'b', 'd'], 'past it, a large body waits; a small one does not')
  t.same(admission.bytes, { inProgress: 100, waiting: 50 })
  const e = enter('e', 30)
  t.same(started, ['small', 'a', 'b', 'd'], 'first come, first served: it fits, but c came first')
  t.equal(enter('f', 80), undefined, 'the line holds 80 bytes: 80 more would pass its bound of 150')
  small?.()
  d?.()
  t.same(admission.bytes, { inProgress: 100, waiting: 80 }, 'small bodies are not counted')
  b?.()
  t.same(started, ['small', 'a', 'b', 'd'], 'c needs 50: 40 are free')
  a?.()
  t.same(started, ['small', 'a', 'b', 'd', 'c', 'e'], 'a and b ended: c and e start')
  a?.()
  t.same(admission.bytes, { inProgress: 80, waiting: 0 }, 'leaving twice gives nothing back twice')
  c?.()
  e?.()
  t.same(admission.bytes, { inProgress: 0, waiting: 0 })
})

t.test('a body that holds more than its bytes while it waits counts that in the line, and its bytes once it starts', async t => {
  const admission = new BodyAdmission(100, 10, 150)
  const started: string[] = []
  const a = admission.enter(100, () => started.push('a'))
  const b = admission.enter(20, () => started.push('b'), 80)
  t.same(admission.bytes, { inProgress: 100, waiting: 80 }, 'b waits, counting 80')
  t.equal(admission.enter(20, () => started.push('c'), 80), undefined, 'another such would take the line to 160')
  const d = admission.enter(20, () => started.push('d'))
  t.same(admission.bytes, { inProgress: 100, waiting: 100 }, 'one counting its 20 bytes fits')
  a?.()
  t.same(started, ['a', 'b', 'd'])
  t.same(admission.bytes, { inProgress: 40, waiting: 0 }, 'in progress, b counts its bytes')
  b?.()
  d?.()
  t.same(admission.bytes, { inProgress: 0, waiting: 0 })
})

t.test('a body that leaves the head of the line lets those behind it in', async t => {
  const admission = new BodyAdmission(100, 10)
  const started: string[] = []
  const a = admission.enter(20, () => started.push('a'))
  const huge = admission.enter(500, () => started.push('huge'))
  const b = admission.enter(20, () => started.push('b'))
  t.same(started, ['a'], 'b fits, but the large one came first')
  huge?.()
  t.same(started, ['a', 'b'], 'the large one left: b starts at once, not when a ends')
  a?.()
  b?.()
  t.same(admission.bytes, { inProgress: 0, waiting: 0 })
})

t.test('an empty line takes a body of any size; one that waits behind others may not pass the bound', async t => {
  const admission = new BodyAdmission(100, 10, 50)
  const started: string[] = []
  const a = admission.enter(60, () => started.push('a'))
  const big = admission.enter(80, () => started.push('big'))
  t.type(big, 'function', '80 bytes wait though the line holds at most 50: it was empty')
  t.equal(admission.enter(20, () => started.push('c')), undefined, 'behind them, 20 more would pass 50')
  a?.()
  t.same(started, ['a', 'big'])
  big?.()
  t.same(admission.bytes, { inProgress: 0, waiting: 0 })
})

t.test('a body larger than the budget starts alone; one that leaves the line never starts', async t => {
  const admission = new BodyAdmission(100, 10)
  const started: string[] = []
  const a = admission.enter(20, () => started.push('a'))
  const huge = admission.enter(500, () => started.push('huge'))
  const gone = admission.enter(20, () => started.push('gone'))
  const b = admission.enter(20, () => started.push('b'))
  t.same(started, ['a'])
  gone?.()
  t.same(started, ['a'], 'nothing fits behind the large one yet')
  a?.()
  t.same(started, ['a', 'huge'], 'once nothing else is in progress')
  t.same(admission.bytes, { inProgress: 500, waiting: 20 })
  huge?.()
  t.same(started, ['a', 'huge', 'b'], 'the body that left the line never starts')
  b?.()
  t.same(admission.bytes, { inProgress: 0, waiting: 0 })
})

/** An mse body of two float32 base64 tensors of n elements each, and its loss. */
function mseBody (n: number, seed: number): { body: Buffer, loss: number } {
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * seed))
  const y = Float32Array.from({ length: n }, (_, i) => Math.cos(i + seed))
  let sum = 0
  for (let i = 0; i < n; i++) sum += (x[i] - y[i]) ** 2
  const tensor = (a: Float32Array): object => ({ dtype: 'float32', shape: [n], data: Buffer.from(a.buffer).toString('base64') })
  return { body: Buffer.from(JSON.stringify({ input: tensor(x), target: tensor(y) })), loss: sum / n }
}

async function post (port: number, body: Buffer): Promise<{ status: number, json: any, retryAfter?: string }> {
  const req = http.request({ port, host: '127.0.0.1', path: '/loss/mse', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length } })
  req.end(body)
  const [res] = await once(req, 'response') as [http.IncomingMessage]
  const chunks: Buffer[] = []
  for await (const c of res) chunks.push(c as Buffer)
  return { status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()), retryAfter: res.headers['retry-after'] as string | undefined }
}

t.test('over HTTP: a large body waits while another is in progress, a full line gets 503, and a client that goes away gives its turn back', async t => {
  const { app, port } = await listening(t, { bodiesInProgressMb: 1, queueMaxMb: 1 })
  const largeBytes = async (): Promise<string> => {
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
    return text.split('\n').filter(l => l.startsWith('losshub_large_body_bytes{')).join(' ')
  }
  const first = mseBody(90000, 1) // some 0.8 MB each: two pass the budget of 1 MiB
  const second = mseBody(90000, 2)
  t.ok(first.body.length > 700000 && first.body.length < 2 ** 20)

  // a client that sends its body slowly (at a pace that still ends within RECEIVE_TIMEOUT_MS):
  // its body is in progress all along
  const stalled = net.connect(port, '127.0.0.1')
  await once(stalled, 'connect')
  stalled.write(`POST /loss/mse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${first.body.length}\r\n\r\n`)
  let sent = 0
  const trickle = setInterval(() => { stalled.write(first.body.subarray(sent, sent + 2000)); sent += 2000 }, 20)
  t.teardown(() => clearInterval(trickle))
  for (let i = 0; i < 100 && !(await largeBytes()).includes(`in_progress"} ${first.body.length}`); i++) await sleep(10)
  t.match(await largeBytes(), `losshub_large_body_bytes{state="in_progress"} ${first.body.length}`)

  let answered = false
  const waiting = post(port, second.body).then(r => { answered = true; return r })
  for (let i = 0; i < 100 && !(await largeBytes()).includes(`waiting"} ${second.body.length}`); i++) await sleep(10)
  t.match(await largeBytes(), `losshub_large_body_bytes{state="waiting"} ${second.body.length}`, 'the second body waits, unread')
  await sleep(200)
  t.equal(answered, false, 'and is not answered meanwhile')

  const refused = await post(port, mseBody(90000, 3).body)
  t.equal(refused.status, 503, 'the line holds as many bytes as QUEUE_MAX_MB allows: the next is refused at once')
  t.equal(refused.json.code, 'OVERLOADED')
  t.match(refused.json.message, /MiB of request bodies wait to be read/)
  t.equal(refused.retryAfter, '1')
  // at once: before its body has arrived, and the connection serves on once the rest is sent
  const third = mseBody(90000, 3).body
  const early = net.connect(port, '127.0.0.1')
  await once(early, 'connect')
  let heard = ''
  early.on('data', (c: Buffer) => { heard += c.toString() })
  early.write(`POST /loss/mse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${third.length}\r\n\r\n`)
  early.write(third.subarray(0, 1000))
  for (let i = 0; i < 200 && !heard.includes('\r\n\r\n{'); i++) await sleep(10)
  t.match(heard, /^HTTP\/1\.1 503 [^]*"code":"OVERLOADED"/, 'the 503 comes while the body is still being sent')
  early.write(third.subarray(1000))
  early.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  await once(early, 'close')
  t.match(heard, /HTTP\/1\.1 200 [^]*$/, 'the rest of the body is read and dropped: the connection serves the next request')

  clearInterval(trickle)
  stalled.destroy()
  const r = await waiting
  t.equal(r.status, 200, 'the stalled client went away: the waiting body is read and answered')
  const loss = fromForm(r.json.loss).data[0]
  t.ok(Math.abs(loss - second.loss) <= 1e-4 * Math.abs(second.loss), `its own loss: ${loss} against ${second.loss}`)
  for (let i = 0; i < 100 && !(await largeBytes()).includes('in_progress"} 0'); i++) await sleep(10)
  t.equal(await largeBytes(), 'losshub_large_body_bytes{state="in_progress"} 0 losshub_large_body_bytes{state="waiting"} 0', 'nothing left counted')
})

/** `body` posted chunked (no Content-Length), as a client streaming a body of unknown length does. */
async function postChunked (port: number, body: Buffer): Promise<{ status: number, json: any }> {
  const req = http.request({ port, host: '127.0.0.1', path: '/loss/mse', method: 'POST', headers: { 'content-type': 'application/json' } })
  for (let at = 0; at < body.length; at += 65536) req.write(body.subarray(at, at + 65536))
  req.end()
  const [res] = await once(req, 'response') as [http.IncomingMessage]
  const chunks: Buffer[] = []
  for await (const c of res) chunks.push(c as Buffer)
  return { status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) }
}

t.test('over HTTP: a chunked body takes its turn in a line of its own once 256 KiB of it are in, counted as the body limit; a small one never waits; a stalled one is cut', async t => {
  const { app, port } = await listening(t, { bodyLimitMb: 2, bodiesInProgressMb: 1, queueMaxMb: 0.3 })
  const limit = 2 * 2 ** 20
  const largeBytes = async (): Promise<string> => {
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
    return text.split('\n').filter(l => l.startsWith('losshub_large_body_bytes{')).join(' ')
  }
  // 300 KiB of a chunked body, then nothing: it is read (the line is empty), counted as 2 MiB
  const stalled = net.connect(port, '127.0.0.1')
  await once(stalled, 'connect')
  const reply: Buffer[] = []
  stalled.on('data', (c: Buffer) => reply.push(c))
  const closed = once(stalled, 'close')
  stalled.write('POST /loss/mse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n')
  stalled.write(`${(300 * 1024).toString(16)}\r\n`)
  stalled.write(Buffer.alloc(300 * 1024, 32))
  stalled.write('\r\n')
  for (let i = 0; i < 100 && !(await largeBytes()).includes(`in_progress"} ${limit}`); i++) await sleep(10)
  t.match(await largeBytes(), `losshub_large_body_bytes{state="in_progress"} ${limit}`, 'a chunked body in progress counts as the body limit')

  const second = mseBody(90000, 5)
  let answered = false
  const waiting = postChunked(port, second.body).then(r => { answered = true; return r })
  for (let i = 0; i < 100 && !(await largeBytes()).includes('waiting"} 262144'); i++) await sleep(10)
  t.match(await largeBytes(), 'losshub_large_body_bytes{state="waiting"} 262144', 'the next large chunked body waits, unread, counted as what it holds here')
  const refused = await postChunked(port, mseBody(90000, 6).body)
  t.equal(refused.status, 503, 'a full line (QUEUE_MAX_MB) refuses the one after it')
  t.equal(refused.json.code, 'OVERLOADED')
  const declared = mseBody(90000, 7)
  const beside = await post(port, declared.body)
  t.equal(beside.status, 200, 'a large body that declares its length is not held up by the chunked ones')
  const small = await postChunked(port, Buffer.from('{"input":[1,2],"target":[0,0]}'))
  t.equal(small.status, 200, 'a small chunked body never waits')
  t.equal(small.json.loss, 2.5)
  t.equal(answered, false, 'the waiting body is not answered while the stalled one is in progress')

  await closed
  const text = Buffer.concat(reply).toString()
  t.match(text, /^HTTP\/1\.1 408 /, 'the stalled chunked body gets 408')
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { code: string, message: string }
  t.equal(body.code, 'RECEIVE_TIMEOUT')
  t.match(body.message, /^body: \d+ bytes arrived in \d+\.\d s, none in the last 2\.0 s or more: the upload stalled$/)
  const r = await waiting
  t.equal(r.status, 200, 'then the waiting one is read and answered')
  const loss = fromForm(r.json.loss).data[0]
  t.ok(Math.abs(loss - second.loss) <= 1e-4 * Math.abs(second.loss), `its own loss: ${loss} against ${second.loss}`)
  for (let i = 0; i < 100 && !(await largeBytes()).includes('in_progress"} 0'); i++) await sleep(10)
  t.equal(await largeBytes(), 'losshub_large_body_bytes{state="in_progress"} 0 losshub_large_body_bytes{state="waiting"} 0', 'nothing left counted')
})

t.test('over HTTP: a body too slow to arrive within RECEIVE_TIMEOUT_MS is answered 408 at once, and the one behind it goes ahead', async t => {
  const { port } = await listening(t, { bodiesInProgressMb: 1, queueMaxMb: 4 })
  // declares 3 MiB (past the budget: it runs alone) and sends 1000 bytes of it
  const stalled = net.connect(port, '127.0.0.1')
  await once(stalled, 'connect')
  const reply: Buffer[] = []
  stalled.on('data', (c: Buffer) => reply.push(c))
  stalled.write(`POST /loss/mse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${3 * 2 ** 20}\r\n\r\n`)
  stalled.write(Buffer.alloc(1000, 32))
  const closed = once(stalled, 'close')
  const behind = mseBody(90000, 4)
  const r = await post(port, behind.body)
  t.equal(r.status, 200, 'the body behind it is read and answered, long before RECEIVE_TIMEOUT_MS')
  await closed
  const text = Buffer.concat(reply).toString()
  t.match(text, /^HTTP\/1\.1 408 /, 'the slow body got 408')
  t.match(text, /connection: close/i, 'and its connection is closed')
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { code: string, message: string }
  t.equal(body.code, 'RECEIVE_TIMEOUT')
  t.match(body.message, /^body: 1000 of 3145728 bytes arrived in \d+\.\d s; at this pace the rest would not arrive within the \d+\.\d s left of RECEIVE_TIMEOUT_MS$/)
})

t.test('a large body\'s pace: judged after the grace, by its better pace with slack, against the time left; stalls cut; a stalled event loop is not the client\'s', async t => {
  const MiB = 2 ** 20
  // checks every PACE_CHECK_MS from `from` to `to`, with `got(at)` bytes in: the first verdict other than 'ok'
  const firstNotOk = (pace: Pace, from: number, to: number, got: (at: number) => number): [number, string] | undefined => {
    for (let at = from; at <= to; at += PACE_CHECK_MS) {
      const v = pace.check(at, got(at))
      if (v !== 'ok') return [at, v]
    }
    return undefined
  }
  // 1 MiB due by 30 s, watched from 0
  t.same(firstNotOk(new Pace(MiB, 30_000, 0), PACE_CHECK_MS, 30_000, () => 0), [PACE_GRACE_MS, 'stalled'], 'nothing at all: stalled once the grace is over')
  t.same(firstNotOk(new Pace(MiB, 30_000, 0), PACE_CHECK_MS, 30_000, at => Math.min(at, 500) * 2000), [500 + PACE_STALL_MS, 'stalled'],
    'all but the last bytes at once, then nothing: stalled PACE_STALL_MS after the last byte came')
  t.same(firstNotOk(new Pace(MiB, 30_000, 0), PACE_CHECK_MS, 30_000, at => Math.floor(at * 60 * 1024 / 1000)), [17_250, 'done'], '60 KiB a second, in at about 17 s: never judged slow')
  t.same(firstNotOk(new Pace(MiB, 30_000, 0), PACE_CHECK_MS, 30_000, at => at * 10), [PACE_GRACE_MS, 'slow'], '10 kB a second: the rest would take some 100 s, too slow even at twice that')
  // 32 MB at 1.2 MB/s after a start that ramps up over 0.4 s (as TCP's does): in at about 27 s of 30
  const ramp = (at: number): number => Math.floor(at < 400 ? 1.2e3 * at * at / 800 : 1.2e3 * (at - 200))
  t.same(firstNotOk(new Pace(32e6, 30_000, 0), PACE_CHECK_MS, 30_000, at => Math.min(ramp(at), 32e6)), [27_000, 'done'], 'a rising pace is judged by its latest: never slow')
  t.same(firstNotOk(new Pace(MiB, 5_000, 0), PACE_CHECK_MS, 5_000, at => Math.min(at, 2000) * 350), [2000 + PACE_STALL_MS, 'stalled'], '350 kB a second for 2 s, then nothing')

  // the event loop stalls 1.6 s after the first check: nothing was read, but the client was not asked to wait
  const stall = new Pace(MiB, 30_000, 0)
  t.equal(stall.check(250, 0), 'ok')
  t.equal(stall.check(1850, 0), 'ok', 'a late check counts as two checks\' time: still within the grace')
  t.equal(stall.watchedMs, 750)
  t.equal(stall.check(2100, MiB), 'done', 'and the body, sent meanwhile, is in at the next check')
})
