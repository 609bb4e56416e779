/**
 * The floor under bench:v2's large requests: servers that only receive a request and answer it,
 * with no parsing, checks or kernel. An HTTP server (node:http) that reads each body into reused
 * memory and answers a short JSON, and a gRPC server (grpc-js, the project's .proto, and the
 * service's HTTP/2 flow-control windows) whose ModelInfer answers an empty response; and a
 * bare Fastify route that parses a JSON body with Fastify's own parser and answers a short JSON
 * (the floor under bench:peer's small requests). Started by bench/v2.ts and bench/peer.ts as a
 * process of its own; prints `{"http": port, "grpc": port, "fastify": port}` once all listen.
 */
import http from 'node:http'
import Fastify from 'fastify'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { protoFile } from '../src/protocols/v2/grpc'
import { widenWindows } from '../src/protocols/v2/grpc-streams'
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

const fastify = Fastify({ logger: false, bodyLimit: 64 * 2 ** 20 })
fastify.post('/loss/:name', async () => ({ loss: 0 }))

server.listen(0, '127.0.0.1', () => {
  rpc.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, grpcPort) => {
    if (err !== null) throw err
    widenWindows(rpc)
    fastify.listen({ port: 0, host: '127.0.0.1' }).then(() => {
      const port = (s: { address: () => unknown }): number => (s.address() as { port: number }).port
      console.log(JSON.stringify({ http: port(server), grpc: grpcPort, fastify: port(fastify.server) }))
    }, (e: Error) => { throw e })
  })
})
process.on('SIGTERM', () => process.exit(0))
