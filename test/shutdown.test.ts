import net from 'node:net'
import { once } from 'node:events'
import http from 'node:http'
import t from 'tap'
import { startServer, waitReady } from './helpers/server'
import { fromForm } from './helpers/tensors'

/** POSTs and resolves once the whole body has been written (`sent`) and when answered (`answer`). */
function post (url: string, path: string, body: string): { sent: Promise<void>, answer: Promise<{ status: number, body: string, retryAfter?: string }> } {
  let markSent: () => void = () => {}
  const sent = new Promise<void>(resolve => { markSent = resolve })
  const answer = new Promise<{ status: number, body: string, retryAfter?: string }>((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, agent: false }, res => {
      let text = ''
      res.on('data', (c: Buffer) => { text += c.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, retryAfter: res.headers['retry-after'] as string | undefined }))
    })
    req.on('error', reject)
    req.end(body, () => markSent())
  })
  return { sent, answer }
}

const n = 256
const c = 1000
const heavy = JSON.stringify({
  input: { dtype: 'float32', shape: [n, c], data: Buffer.from(Float32Array.from({ length: n * c }, (_, i) => Math.sin(i)).buffer).toString('base64') },
  target: { dtype: 'int64', shape: [n], data: Buffer.from(BigInt64Array.from({ length: n }, (_, i) => BigInt(i % c)).buffer).toString('base64') },
  grad: true
})

t.test('SIGTERM under load: every request sent before the signal is answered 200, later ones get 503, exit 0', async t => {
  const server = await startServer(t, { WORKERS: '1', SHUTDOWN_TIMEOUT_MS: '20000', BATCH_MAX_SIZE: '4' })
  await waitReady(server.url)
  const calls = Array.from({ length: 48 }, () => post(server.url, '/loss/cross_entropy', heavy))
  await Promise.all(calls.map(async c => await c.sent))
  let answeredBefore = 0
  for (const c of calls) void c.answer.then(() => { answeredBefore++ }, () => {})
  const inFlight = calls.length - answeredBefore
  server.child.kill('SIGTERM')
  // readiness fails while the drain is still answering what was sent
  let ready: number | string = 'not polled'
  let answeredAtReady = -1
  for (let i = 0; i < 200 && ready !== 503; i++) {
    ready = await fetch(`${server.url}/readyz`).then(r => r.status, () => 'refused')
    answeredAtReady = answeredBefore
  }
  const answers = await Promise.all(calls.map(async c => await c.answer))
  // once it has caught up and been quiet, a new loss request is refused with Retry-After
  // (or at connect, once the listener has closed)
  await new Promise(resolve => setTimeout(resolve, 300))
  const late = await post(server.url, '/loss/mse', JSON.stringify({ input: [1], target: [0] })).answer.catch(() => undefined)
  const code = await server.exited
  t.ok(inFlight > 0, `${inFlight} of ${calls.length} requests were in flight at SIGTERM`)
  t.same(answers.map(a => a.status), answers.map(() => 200), 'every request sent before SIGTERM got a 200')
  const losses = answers.map(a => fromForm(JSON.parse(a.body).loss).data[0])
  t.ok(losses.every(l => Math.abs(l - losses[0]) < 1e-5), `each answer is the loss of that input (${losses[0]})`)
  t.equal(ready, 503, '/readyz turns 503')
  t.ok(answeredAtReady < calls.length, `... while the drain was still answering (${answeredAtReady} of ${calls.length} answered then)`)
  if (late !== undefined) {
    t.equal(late.status, 503, 'a request after SIGTERM gets 503')
    t.equal(JSON.parse(late.body).code, 'SHUTTING_DOWN')
    t.equal(late.retryAfter, '1', 'with Retry-After')
  } else t.pass('the listener had already closed: the late request was refused at connect')
  t.equal(code, 0, 'exit code 0')
  t.comment(`shutdown figures: ${inFlight} in flight at SIGTERM, ${answers.filter(a => a.status === 200).length} answered 200`)
})

t.test('while draining: /readyz is 503; once refusing, loss requests get 503 SHUTTING_DOWN with Retry-After', async t => {
  const { build, postLoss } = await import('./helpers/app')
  const app = await build(t)
  app.losshub.draining = true
  const ready = await app.inject('/readyz')
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().code, 'SHUTTING_DOWN')
  const served = await postLoss(app, 'mse', { input: [1], target: [0] })
  t.equal(served.status, 200, 'what arrives before refusing starts is still served')
  t.equal(served.headers.connection, 'close', 'and its connection ends with it: the client\'s next request goes on a new one')
  app.losshub.refusing = true
  const r = await postLoss(app, 'mse', { input: [1], target: [0] })
  t.equal(r.status, 503)
  t.equal(r.body.code, 'SHUTTING_DOWN')
  t.equal(r.headers['retry-after'], '1')
  t.equal(r.headers.connection, 'close')
  t.equal((await app.inject('/healthz')).statusCode, 200, 'liveness holds while draining')
})

t.test('SIGTERM while the kernels still load: the warm-up stops, the process drains and exits 0', async t => {
  const server = await startServer(t, { WORKERS: '1' })
  server.child.kill('SIGTERM') // at once: listening, not ready yet
  t.equal(await server.exited, 0, 'exit code 0')
  t.notOk(server.logs.some(l => l.includes('kernels loaded; ready')), 'it was stopped before readiness')
  t.ok(server.logs.some(l => l.includes('drained; exiting')))
})

t.test('SIGTERM with a body still arriving when SHUTDOWN_TIMEOUT_MS nearly runs out: it gets 503 SHUTTING_DOWN, not a cut connection, and the process exits 0 in time', async t => {
  const server = await startServer(t, { WORKERS: '1', SHUTDOWN_TIMEOUT_MS: '2000' })
  await waitReady(server.url)
  const { port } = new URL(server.url)
  // 200 kB at 10 kB/s: an honest upload (too small to be paced) that would take 20 s
  const socket = net.connect(Number(port), '127.0.0.1')
  await once(socket, 'connect')
  let heard = ''
  // a client that stops sending once answered (more bytes after the close would be reset)
  socket.on('data', (c: Buffer) => { heard += c.toString(); clearInterval(trickle) })
  socket.on('error', () => {})
  const closed = once(socket, 'close')
  socket.write(`POST /loss/mse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n${' '.repeat(1000)}`)
  const trickle = setInterval(() => { if (!socket.destroyed) socket.write(' '.repeat(1000)) }, 100)
  t.teardown(() => clearInterval(trickle))
  await new Promise(resolve => setTimeout(resolve, 300))
  const signalled = Date.now()
  server.child.kill('SIGTERM')
  const code = await server.exited
  const took = Date.now() - signalled
  await closed
  clearInterval(trickle)
  t.match(heard, /^HTTP\/1\.1 503 /, 'the upload is answered 503')
  t.match(heard, /connection: close/i)
  t.match(heard, /retry-after: 1/i)
  const body = JSON.parse(heard.slice(heard.indexOf('\r\n\r\n') + 4)) as { code: string, message: string }
  t.equal(body.code, 'SHUTTING_DOWN')
  t.match(body.message, /SHUTDOWN_TIMEOUT_MS ran out/)
  t.equal(code, 0, 'exit code 0: drained within SHUTDOWN_TIMEOUT_MS by its own clock (at it, the process exits 1)')
  // seen from here, the signal's delivery and the exit's observation add to it on a loaded
  // machine (2,023 ms in one CI run): a slack, far below the upload's 20 s
  t.ok(took < 3000, `within SHUTDOWN_TIMEOUT_MS and a slack (${took} ms)`)
})

t.test('SIGTERM while a kernel runs past SHUTDOWN_TIMEOUT_MS: its request gets 503, and the process is killed as it says, not aborted', async t => {
  // MAX_STEPS raised past the frames below: a kernel that outlives the shutdown is what is tested here
  const server = await startServer(t, { WORKERS: '1', SHUTDOWN_TIMEOUT_MS: '1500', MAX_STEPS: '300000' })
  await waitReady(server.url)
  // 'close', not 'exit': the process's last output may still be on its way when it has exited
  const ended = new Promise<string | null>(resolve => server.child.once('close', (_code: number | null, signal: string | null) => resolve(signal)))
  // ctc over 300,000 frames with gradients: some 30 µs of kernel a frame, seconds past the timeout
  const frames = 300_000
  const ctc = post(server.url, '/loss/ctc', JSON.stringify({
    log_probs: { dtype: 'float32', shape: [frames, 1, 5], data: Buffer.from(new Float32Array(frames * 5).fill(Math.log(0.2)).buffer).toString('base64') },
    targets: [[1, 2]],
    input_lengths: [frames],
    target_lengths: [2],
    grad: true
  }))
  await ctc.sent
  await new Promise(resolve => setTimeout(resolve, 300))
  server.child.kill('SIGTERM')
  const answer = await ctc.answer
  t.equal(answer.status, 503, 'the request is answered before the end')
  t.equal(JSON.parse(answer.body).code, 'SHUTTING_DOWN')
  // an exit would stop the kernel's thread, and onnxruntime-node then aborts the process (SIGABRT)
  t.equal(await ended, 'SIGKILL', 'killed, not aborted')
  const last = server.logs.map(l => JSON.parse(l) as { msg: string, threadsInKernels?: number }).find(l => /^shutdown timed out/.test(l.msg))
  t.match(last, { msg: 'shutdown timed out with a kernel still running; killing the process', threadsInKernels: 1 }, 'its last log line says why')
})
