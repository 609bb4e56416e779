/**
 * The floor under bench:v2's large requests: servers that only receive a request and answer it,
 * with no parsing, checks or kernel. An HTTP server (node:http) that reads each body into reused
 * memory and answers a short JSON, and a gRPC server (grpc-js, the project's .proto, and the
 * service's HTTP/2 flow-control windows) whose ModelInfer answers an empty response; the same
 * over node:http2 alone, each message read into reused memory (as the service reads a large
 * one: src/protocols/v2/grpc-collected.ts); and a bare Fastify route that parses a JSON body
 * with Fastify's own parser and answers a short JSON (the floor under bench:peer's small
 * requests). Started by bench/v2.ts and bench/peer.ts as a process of its own; prints
 * `{"http": port, "grpc": port, "h2": port, "fastify": port}` once all listen.
 */
import http from 'node:http'
import http2 from 'node:http2'
import Fastify from 'fastify'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { protoFile } from '../src/protocols/v2/grpc'
import { FLOW_CONTROL_WINDOW, widenWindows } from '../src/protocols/v2/grpc-streams'
import { GRPC_LOADER_OPTIONS } from '../src/protocols/v2/grpc-messages'

let memory = Buffer.allocUnsafe(0)
const server = http.createServer((req, res) => {
  const length = Number(req.headers['content-length'] ?? 0)
  if (memory.length < length) memory = Buffer.allocUnsafe(length)
  let at = 0
  req.on('data', (chunk: Buffer) => { at += chunk.copy(memory, at) })
  req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"outputs":[]}') })
})

const definition = protoLoader.loadSync(protoFile('grpc_service.proto'), GRPC_LOADER_OPTIONS)
const service = (grpc.loadPackageDefinition(definition).inference as grpc.GrpcObject).GRPCInferenceService as grpc.ServiceClientConstructor
const rpc = new grpc.Server({ 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 })
rpc.addService(service.service, {
  ModelInfer: (call: grpc.ServerUnaryCall<{ model_name?: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    callback(null, { model_name: call.request.model_name, outputs: [], raw_output_contents: [] })
  }
})

// gRPC over node:http2 with nothing between: each message (its 5-byte prefix, then its bytes)
// into reused memory, decoded, and an empty response with grpc-status 0
const empty = (service.service.ModelInfer.responseSerialize as (r: object) => Buffer)({ outputs: [], raw_output_contents: [] })
const emptyFramed = Buffer.alloc(5 + empty.length)
emptyFramed.writeUInt32BE(empty.length, 1)
empty.copy(emptyFramed, 5)
const h2 = http2.createServer({ settings: { initialWindowSize: FLOW_CONTROL_WINDOW } })
h2.on('session', session => { session.setLocalWindowSize(FLOW_CONTROL_WINDOW) })
h2.on('stream', stream => {
  let at = 0
  let framed = memory
  stream.on('data', (chunk: Buffer) => {
    // the prefix's length, once it is in (first chunks hold it whole here)
    if (at === 0 && chunk.length >= 5 && framed.length < 5 + chunk.readUInt32BE(1)) framed = memory = Buffer.allocUnsafe(5 + chunk.readUInt32BE(1))
    at += chunk.copy(framed, at)
  })
  stream.on('end', () => {
    ;(service.service.ModelInfer.requestDeserialize as (b: Buffer) => unknown)(framed.subarray(5, at))
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
    stream.once('wantTrailers', () => { stream.sendTrailers({ 'grpc-status': '0' }) })
    stream.end(emptyFramed)
  })
})

const fastify = Fastify({ logger: false, bodyLimit: 64 * 2 ** 20 })
fastify.post('/loss/:name', async () => ({ loss: 0 }))

server.listen(0, '127.0.0.1', () => {
  rpc.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, grpcPort) => {
    if (err !== null) throw err
    widenWindows(rpc)
    h2.listen(0, '127.0.0.1', () => {
      fastify.listen({ port: 0, host: '127.0.0.1' }).then(() => {
        const port = (s: { address: () => unknown }): number => (s.address() as { port: number }).port
        console.log(JSON.stringify({ http: port(server), grpc: grpcPort, h2: port(h2), fastify: port(fastify.server) }))
      }, (e: Error) => { throw e })
    })
  })
})
process.on('SIGTERM', () => process.exit(0))
