/**
 * The Open Inference Protocol's two front doors against POST /loss (npm run bench:v2), on one
 * server at its defaults (one process per CPU, gRPC on its own port):
 * - cross_entropy [4096,1000] float32 (and [4096] int64 targets) at concurrency 1: /loss with
 *   base64 tensors, V2 REST in the binary form, gRPC with raw_input_contents; p50 and p99 of a
 *   keep-alive loop timed with hrtime (the goal: p50 at most 12 ms for both V2 forms);
 * - cross_entropy [256,1000] as JSON text at concurrency 1: /loss nested against V2 REST's JSON
 *   form (flat and nested data), and both with grad (a [256,1000] answer written as text); and
 *   gRPC with typed contents (fp32_contents), with and without grad;
 * - cross_entropy [32,10] at concurrency 64: /loss with nested JSON (autocannon) against gRPC
 *   with raw_input_contents (64 calls in flight over 8 connections, so that every worker of
 *   the cluster gets some: the primary hands out connections, not calls); requests per second
 *   (the goal: gRPC at least equal); when wrk and h2load are on PATH, again with those C load
 *   generators (bench/native-load.ts), which take less of the cores the server runs on.
 * gRPC requests go through a lean HTTP/2 client (encoded once, framed by hand), as the HTTP
 * ones go through a keep-alive agent or autocannon with prebuilt bodies: the cells measure the
 * server, not grpc-js's client.
 * Every answer is checked against the /loss answer of the same request. The large request also
 * goes to bench/bare-server.ts, servers that only receive it and answer (node:http, grpc-js,
 * node:http2 alone):
 * the floor that transport alone sets on this machine. BENCH_SECONDS (default 4) per
 * measurement; the load generator shares the cores with the server.
 */
import http from 'node:http'
import os from 'node:os'
import autocannon from 'autocannon'
import http2 from 'node:http2'
import * as protoLoader from '@grpc/proto-loader'
import { protoFile } from '../src/protocols/v2/grpc'
import { freePort, startBare, startServer } from './server'
import { h2loadPost, hasTool, wrkPost } from './native-load'

const seconds = Number(process.env.BENCH_SECONDS ?? 4)

let seed = 5
const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
const values = (n: number): Float32Array => Float32Array.from({ length: n }, () => Math.round((rand() * 4 - 2) * 1e4) / 1e4)
const indices = (n: number, c: number): BigInt64Array => BigInt64Array.from({ length: n }, () => BigInt(Math.floor(rand() * c)))
const bytes = (a: Float32Array | BigInt64Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
const floats = (base64: string): Float32Array => new Float32Array(new Uint8Array(Buffer.from(base64, 'base64')).buffer)

/** One cross_entropy request in every form the bench sends. */
interface Case { n: number, c: number, base64: string, nested: string, v2Header: Buffer, v2Body: Buffer, grpc: object, grpcTyped: object, v2Json: string, v2JsonNested: string }

function makeCase (n: number, c: number): Case {
  const x = values(n * c)
  const t = indices(n, c)
  const base64 = JSON.stringify({ input: { dtype: 'float32', shape: [n, c], data: bytes(x).toString('base64') }, target: { dtype: 'int64', shape: [n], data: bytes(t).toString('base64') } })
  const rows = Array.from({ length: n }, (_, i) => Array.from(x.subarray(i * c, (i + 1) * c)))
  const nested = JSON.stringify({ input: rows, target: Array.from(t, Number) })
  const inputs = [{ name: 'input', datatype: 'FP32', shape: [n, c] }, { name: 'target', datatype: 'INT64', shape: [n] }]
  const v2Header = Buffer.from(JSON.stringify({ inputs: inputs.map((i, k) => ({ ...i, parameters: { binary_data_size: k === 0 ? x.byteLength : t.byteLength } })) }))
  // gRPC with the elements in the contents field of each datatype, not raw
  const grpcTyped = { model_name: 'cross_entropy', inputs: [{ ...inputs[0], contents: { fp32_contents: Array.from(x) } }, { ...inputs[1], contents: { int64_contents: Array.from(t, String) } }] }
  // the JSON form, with flat data (as tritonclient writes it) or nested rows
  const v2Json = JSON.stringify({ inputs: [{ ...inputs[0], data: Array.from(x) }, { ...inputs[1], data: Array.from(t, Number) }] })
  const v2JsonNested = JSON.stringify({ inputs: [{ ...inputs[0], data: rows }, { ...inputs[1], data: Array.from(t, Number) }] })
  return { n, c, base64, nested, v2Header, v2Body: Buffer.concat([v2Header, bytes(x), bytes(t)]), grpc: { model_name: 'cross_entropy', inputs, raw_input_contents: [bytes(x), bytes(t)] }, grpcTyped, v2Json, v2JsonNested }
}

interface Cell { rps: number, p50: number, p99: number, errors: number, loss?: number }

/** Latency of one request at a time for `seconds`: p50, p99 (ms), and the last answer's loss. */
async function serial (once: () => Promise<number | undefined>): Promise<Cell> {
  const times: number[] = []
  let errors = 0
  let loss: number | undefined
  const until = performance.now() + seconds * 1000
  while (performance.now() < until) {
    const t0 = process.hrtime.bigint()
    const got = await once().catch(() => undefined)
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
    if (got === undefined) errors++
    else loss = got
  }
  times.sort((a, b) => a - b)
  const q = (p: number): number => times[Math.min(times.length - 1, Math.floor(p * times.length))]
  return { rps: times.length / seconds, p50: q(0.5), p99: q(0.99), errors, loss }
}

/** An HTTP POST on a keep-alive agent, resolving with the answer's loss (undefined unless 200). */
function poster (url: string, agent: http.Agent): (path: string, body: Buffer, headers: Record<string, string>, lossOf: (json: any) => number) => Promise<number | undefined> {
  const { hostname, port } = new URL(url)
  return async (path, body, headers, lossOf) => await new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path, method: 'POST', agent, headers: { ...headers, 'content-length': body.length } }, res => {
      const chunks: Buffer[] = []
      res.on('data', (b: Buffer) => chunks.push(b))
      res.on('end', () => resolve(res.statusCode === 200 ? lossOf(JSON.parse(Buffer.concat(chunks).toString())) : undefined))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * A lean gRPC client over node:http2, as autocannon is a lean HTTP one: each request encoded
 * once with the .proto's own types and framed by hand, calls taking turns over `connections`
 * HTTP/2 connections; an answer is the response message, or undefined unless grpc-status is 0.
 */
function grpcClient (port: number, connections: number): {
  frame: (request: object) => Buffer
  call: (frame: Buffer) => Promise<Buffer | undefined>
  lossOf: (message: Buffer) => number
  typedLossOf: (message: Buffer) => number
  close: () => void
} {
  const method = protoLoader.loadSync(protoFile('grpc_service.proto'), { keepCase: true, longs: Number, enums: String })['inference.GRPCInferenceService'] as protoLoader.ServiceDefinition
  const infer = method.ModelInfer
  const sessions = Array.from({ length: connections }, () => http2.connect(`http://127.0.0.1:${port}`))
  let next = 0
  return {
    // the gRPC framing: a compressed flag (0), the message length (big-endian), the message
    frame: request => {
      const message = infer.requestSerialize(request)
      const out = Buffer.alloc(5 + message.length)
      out.writeUInt32BE(message.length, 1)
      message.copy(out, 5)
      return out
    },
    call: async frame => await new Promise(resolve => {
      const stream = sessions[next++ % connections].request({ ':method': 'POST', ':path': infer.path, 'content-type': 'application/grpc', te: 'trailers' })
      const chunks: Buffer[] = []
      let status: unknown
      stream.on('data', (b: Buffer) => chunks.push(b))
      stream.on('trailers', h => { status = h['grpc-status'] })
      stream.on('close', () => resolve(status === '0' ? Buffer.concat(chunks).subarray(5) : undefined))
      stream.on('error', () => {})
      stream.end(frame)
    }),
    lossOf: message => {
      const r = infer.responseDeserialize(message) as { raw_output_contents: Buffer[] }
      return new Float32Array(new Uint8Array(r.raw_output_contents[0]).buffer)[0]
    },
    typedLossOf: message => (infer.responseDeserialize(message) as { outputs: Array<{ contents: { fp32_contents: number[] } }> }).outputs[0].contents.fp32_contents[0],
    close: () => { for (const s of sessions) s.close() }
  }
}

/** Requests per second of `connections` calls kept in flight for `seconds`. */
async function inFlight (connections: number, once: () => Promise<number | undefined>): Promise<Cell> {
  let done = 0
  let errors = 0
  const until = performance.now() + seconds * 1000
  const t0 = performance.now()
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < until) {
      if (await once() === undefined) errors++
      done++
    }
  }))
  return { rps: done / ((performance.now() - t0) / 1000), p50: NaN, p99: NaN, errors }
}

/** ModelInfer's HTTP/2 path. */
const GRPC_INFER_PATH = '/inference.GRPCInferenceService/ModelInfer'

/** The server's count of gRPC calls that failed (its /metrics, summed over the cluster). */
async function grpcFailures (url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  let failed = 0
  for (const m of text.matchAll(/^losshub_requests_total\{([^}]*)\} (\d+)/gm)) {
    if (m[1].includes('protocol="grpc"') && !m[1].includes('status="200"')) failed += Number(m[2])
  }
  return failed
}

async function main (): Promise<void> {
  const grpcPort = await freePort()
  const server = await startServer({ GRPC_PORT: String(grpcPort) })
  const bare = await startBare()
  const bareAgent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const barePost = poster(`http://127.0.0.1:${bare.http}`, bareAgent)
  const bareGrpc = grpcClient(bare.grpc, 1)
  const bareH2 = grpcClient(bare.h2, 1)
  const bareMany = grpcClient(bare.grpc, 8)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const post = poster(server.url, agent)
  const single = grpcClient(grpcPort, 1)
  const many = grpcClient(grpcPort, 8)
  const answer = async (client: typeof single, frame: Buffer): Promise<number | undefined> => {
    const message = await client.call(frame)
    return message === undefined ? undefined : client.lossOf(message)
  }
  try {
    const cpus = os.cpus()
    console.log(`# Open Inference Protocol: gRPC and REST against POST /loss\n\n${cpus[0].model} × ${cpus.length}, Node ${process.version}; server at its defaults (one process per CPU), gRPC on GRPC_PORT; the load generator on the same cores; ${seconds} s per measurement.\n`)
    const large = makeCase(4096, 1000)
    const largeFrame = single.frame(large.grpc)
    const cells: Array<[string, () => Promise<number | undefined>]> = [
      ['POST /loss, base64', async () => await post('/loss/cross_entropy', Buffer.from(large.base64), { 'content-type': 'application/json' }, j => floats(j.loss.data)[0])],
      ['V2 REST, binary form', async () => await post('/v2/models/cross_entropy/infer', large.v2Body, { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(large.v2Header.length) }, j => j.outputs[0].data[0])],
      ['V2 gRPC, raw_input_contents', async () => await answer(single, largeFrame)]
    ]
    // the floor: the same bytes to servers that only receive them and answer
    const floor: Array<[string, () => Promise<number | undefined>]> = [
      ['floor: node:http reading the V2 binary body, no work', async () => await barePost('/', large.v2Body, { 'content-type': 'application/octet-stream' }, () => 0)],
      ['floor: grpc-js receiving the ModelInfer message, no work', async () => (await bareGrpc.call(largeFrame)) === undefined ? undefined : 0],
      ['floor: node:http2 reading the ModelInfer message into reused memory, no work', async () => (await bareH2.call(largeFrame)) === undefined ? undefined : 0]
    ]
    console.log('cross_entropy [4096,1000] float32, [4096] int64 targets, concurrency 1 (goal: V2 p50 <= 12 ms)\n')
    console.log('| front door | p50 ms | p99 ms | req/s | errors | loss |')
    console.log('|---|---:|---:|---:|---:|---:|')
    const losses: number[] = []
    for (const [name, once] of cells) {
      for (let i = 0; i < 3; i++) await once() // kernels built, JITs hot
      const r = await serial(once)
      console.log(`| ${name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.rps.toFixed(1)} | ${r.errors} | ${r.loss?.toFixed(5) ?? '-'} |`)
      losses.push(r.loss ?? NaN)
    }
    if (!losses.every(l => Math.abs(l - losses[0]) <= 1e-5 * Math.abs(losses[0]))) throw new Error(`[4096,1000]: the front doors disagree: ${losses.join(', ')}`)
    for (const [name, once] of floor) {
      for (let i = 0; i < 3; i++) await once()
      const r = await serial(once)
      console.log(`| ${name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.rps.toFixed(1)} | ${r.errors} | - |`)
    }

    // the JSON forms: as text, the V2 REST request should cost what POST /loss costs
    const medium = makeCase(256, 1000)
    const withGrad = (json: string, field: 'grad' | 'parameters'): Buffer => {
      const body = JSON.parse(json) as Record<string, unknown>
      return Buffer.from(JSON.stringify(field === 'grad' ? { ...body, grad: true } : { ...body, parameters: { grad: true } }))
    }
    const json = { 'content-type': 'application/json' }
    const v2Loss = (j: any): number => j.outputs[0].data[0]
    // each body made once, as autocannon's are
    const typedFrame = single.frame(medium.grpcTyped)
    const typedGradFrame = single.frame({ ...medium.grpcTyped, parameters: { grad: { bool_param: true } } })
    const typedAnswer = async (frame: Buffer): Promise<number | undefined> => {
      const message = await single.call(frame)
      return message === undefined ? undefined : single.typedLossOf(message)
    }
    const [nestedBody, v2Flat, v2Nested, nestedGrad, v2FlatGrad] = [Buffer.from(medium.nested), Buffer.from(medium.v2Json), Buffer.from(medium.v2JsonNested), withGrad(medium.nested, 'grad'), withGrad(medium.v2Json, 'parameters')]
    const textCells: Array<[string, () => Promise<number | undefined>]> = [
      ['POST /loss, nested JSON', async () => await post('/loss/cross_entropy', nestedBody, json, j => j.loss)],
      ['V2 REST, JSON form, flat data', async () => await post('/v2/models/cross_entropy/infer', v2Flat, json, v2Loss)],
      ['V2 REST, JSON form, nested data', async () => await post('/v2/models/cross_entropy/infer', v2Nested, json, v2Loss)],
      ['POST /loss, nested JSON, with grad (answer: [256,1000] as JSON text)', async () => await post('/loss/cross_entropy', nestedGrad, json, j => j.loss)],
      ['V2 REST, JSON form, flat data, with grad', async () => await post('/v2/models/cross_entropy/infer', v2FlatGrad, json, v2Loss)],
      ['V2 gRPC, typed contents (fp32_contents)', async () => await typedAnswer(typedFrame)],
      ['V2 gRPC, typed contents, with grad (answer: [256,1000] typed contents)', async () => await typedAnswer(typedGradFrame)]
    ]
    console.log('\ncross_entropy [256,1000] float32 as JSON text (1.9 MB) or gRPC typed contents, [256] targets, concurrency 1\n')
    console.log('| front door | p50 ms | p99 ms | req/s | errors | loss |')
    console.log('|---|---:|---:|---:|---:|---:|')
    const textLosses: number[] = []
    for (const [name, once] of textCells) {
      for (let i = 0; i < 3; i++) await once()
      const r = await serial(once)
      console.log(`| ${name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.rps.toFixed(1)} | ${r.errors} | ${r.loss?.toFixed(5) ?? '-'} |`)
      textLosses.push(r.loss ?? NaN)
    }
    if (!textLosses.every(l => Math.abs(l - textLosses[0]) <= 1e-5 * Math.abs(textLosses[0]))) throw new Error(`[256,1000]: the front doors disagree: ${textLosses.join(', ')}`)

    const small = makeCase(32, 10)
    const warm = async (once: () => Promise<number | undefined>): Promise<void> => { await inFlight(8, once) }
    const smallFrame = many.frame(small.grpc)
    // like autocannon, the load loop reads no answer: it counts those with grpc-status 0
    const viaGrpc = async (): Promise<number | undefined> => (await many.call(smallFrame)) === undefined ? undefined : 0
    const reference = await post('/loss/cross_entropy', Buffer.from(small.nested), { 'content-type': 'application/json' }, j => j.loss)
    const check = await answer(many, smallFrame)
    if (reference === undefined || check === undefined || Math.abs(reference - check) > 1e-5 * Math.abs(reference) + 1e-6) throw new Error(`[32,10]: gRPC answers ${check}, /loss ${reference}`)
    await warm(viaGrpc)
    const loss = await autocannon({ url: `${server.url}/loss/cross_entropy`, method: 'POST', headers: { 'content-type': 'application/json' }, body: small.nested, connections: 64, duration: seconds })
    const g = await inFlight(64, viaGrpc)
    const bareFrame = bareMany.frame(small.grpc)
    const bareRate = await inFlight(64, async () => (await bareMany.call(bareFrame)) === undefined ? undefined : 0)
    console.log('\ncross_entropy [32,10], concurrency 64 (goal: gRPC req/s at least those of /loss)\n')
    console.log('| front door | req/s | errors |')
    console.log('|---|---:|---:|')
    console.log(`| POST /loss, nested JSON (autocannon, 64 connections) | ${loss.requests.average.toFixed(0)} | ${loss.errors + loss.non2xx} |`)
    console.log(`| V2 gRPC, raw_input_contents (64 calls in flight, 8 connections) | ${g.rps.toFixed(0)} | ${g.errors} |`)
    console.log(`| floor: grpc-js answering ModelInfer with no work, one process (64 in flight, 8 connections) | ${bareRate.rps.toFixed(0)} | ${bareRate.errors} |`)
    console.log(`\ngRPC / /loss: ${(g.rps / loss.requests.average).toFixed(2)}x`)
    if (hasTool('wrk') && hasTool('h2load')) {
      // the same pair with generators in C, which leave the server more of the two cores
      const before = await grpcFailures(server.url)
      const viaH2load = await h2loadPost(`http://127.0.0.1:${grpcPort}${GRPC_INFER_PATH}`, smallFrame, { 'content-type': 'application/grpc', te: 'trailers' }, 8, 8, seconds)
      const after = await grpcFailures(server.url)
      const viaWrk = await wrkPost(`${server.url}/loss/cross_entropy`, small.nested, { 'content-type': 'application/json' }, 64, seconds)
      const failed = after - before + viaH2load.errors
      console.log('\nThe same with load generators in C (one wrk thread, 64 connections; h2load, 8 connections of 8 streams; gRPC failures counted by the server):\n')
      console.log('| front door | req/s | errors |')
      console.log('|---|---:|---:|')
      console.log(`| POST /loss, nested JSON (wrk) | ${viaWrk.rps.toFixed(0)} | ${viaWrk.errors} |`)
      console.log(`| V2 gRPC, raw_input_contents (h2load) | ${viaH2load.rps.toFixed(0)} | ${failed} |`)
      console.log(`\ngRPC / /loss with C generators: ${(viaH2load.rps / viaWrk.rps).toFixed(2)}x`)
    } else console.log('\n(wrk and h2load not both on PATH: no run with C load generators)')
  } finally {
    single.close()
    many.close()
    bareGrpc.close()
    bareH2.close()
    bareMany.close()
    agent.destroy()
    bareAgent.destroy()
    bare.stop()
    await server.stop()
  }
}

main().catch(err => { console.error(err); process.exit(1) })
