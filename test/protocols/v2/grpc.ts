/**
 * Test-side gRPC clients of the Open Inference Protocol and of grpc.health.v1, generated at
 * test time from the repository's .proto files by @grpc/proto-loader (as a client would
 * generate them), and tensors written and read back independently of src/protocols/v2.
 */
import path from 'node:path'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { type FastifyInstance } from 'fastify'
import { type Test } from 'tap'
import { type AppOptions } from '../../../src/app'
import { type Config } from '../../../src/config'
import { build } from '../../helpers/app'
import { type Flat } from '../../helpers/tensors'
import { bytesOf, DATATYPE } from './v2'

/** The repository's proto/ directory. */
export const PROTO_DIR = path.join(__dirname, '..', '..', '..', 'proto')

/** A client's reading of the messages: proto field names, int64 as strings (exact), every field present. */
const LOADER = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true }

/** The generated package: inference.GRPCInferenceService and grpc.health.v1.Health. */
export function loadPackage (): any {
  return grpc.loadPackageDefinition(protoLoader.loadSync([path.join(PROTO_DIR, 'grpc_service.proto'), path.join(PROTO_DIR, 'health.proto')], LOADER))
}

/** A failed call: gRPC status, details and trailing metadata. */
export interface Failure { code: grpc.status, details: string, metadata: Record<string, string> }

/** A call's answer, or its failure. */
export type Outcome = { ok: true, value: any } | { ok: false, error: Failure }

/** The two services' clients at `port`, and a promise-returning caller. */
export interface Clients {
  inference: any
  health: any
  /** Calls `method` of the inference service (or of `health`). */
  call: (method: string, request: object, options?: { deadline?: Date, service?: 'inference' | 'health' }) => Promise<Outcome>
  close: () => void
}

/** Clients of a server listening on 127.0.0.1:`port`; no client-side message limits. */
export function clients (port: number): Clients {
  const pkg = loadPackage()
  const opts = { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 }
  const inference = new pkg.inference.GRPCInferenceService(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), opts)
  const health = new pkg.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), opts)
  return {
    inference,
    health,
    call: async (method, request, options = {}) => await new Promise(resolve => {
      const client = options.service === 'health' ? health : inference
      client[method](request, new grpc.Metadata(), { deadline: options.deadline }, (err: grpc.ServiceError | null, value: any) => {
        if (err === null) return resolve({ ok: true, value })
        const metadata: Record<string, string> = {}
        for (const [k, v] of Object.entries(err.metadata?.getMap() ?? {})) metadata[k] = String(v)
        resolve({ ok: false, error: { code: err.code, details: err.details, metadata } })
      })
    }),
    close: () => { inference.close(); health.close() }
  }
}

/** A ready app (as `build`) with its gRPC front door on a free loopback port, and clients of it; all closed at teardown. */
export async function grpcApp (t: Test, config: Partial<Config> = {}, options: AppOptions = {}): Promise<{ app: FastifyInstance, port: number } & Clients> {
  const app = await build(t, config, options)
  await app.ready()
  const port = await app.losshub.grpc.listen(0, '127.0.0.1')
  const c = clients(port)
  t.teardown(() => c.close())
  return { app, port, ...c }
}

/** An input with typed contents in the field of its datatype. */
export function typedInput (name: string, t: Flat): object {
  const field = { float32: 'fp32_contents', float64: 'fp64_contents', int32: 'int_contents', int64: 'int64_contents' }[t.dtype]
  const num = (v: number | string): number | string => v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v
  return { name, datatype: DATATYPE[t.dtype], shape: t.shape, contents: { [field]: t.data.map(num) } }
}

/** A request with every input raw: the inputs' heads and their bytes in raw_input_contents. */
export function rawInputs (inputs: Array<{ name: string, t: Flat }>): { inputs: object[], raw_input_contents: Buffer[] } {
  return {
    inputs: inputs.map(({ name, t }) => ({ name, datatype: DATATYPE[t.dtype], shape: t.shape })),
    raw_input_contents: inputs.map(({ t }) => bytesOf(t))
  }
}

/** A parameter map of JSON scalars as InferParameters: booleans, integers (int64), other numbers (double), strings. */
export function params (values: Record<string, boolean | number | string>): Record<string, object> {
  const out: Record<string, object> = {}
  for (const [k, v] of Object.entries(values)) {
    out[k] = typeof v === 'boolean' ? { bool_param: v } : typeof v === 'string' ? { string_param: v } : Number.isInteger(v) ? { int64_param: v } : { double_param: v }
  }
  return out
}

/** An output of a response as numbers, whether it came raw or typed. */
export interface GrpcOutput { name: string, datatype: string, shape: number[], raw: boolean, data: number[] }

/** Reads a ModelInferResponse's outputs, by name, in order. */
export function outputsOf (response: any): Map<string, GrpcOutput> {
  const out = new Map<string, GrpcOutput>()
  const raws: Buffer[] = response.raw_output_contents ?? []
  response.outputs.forEach((o: any, i: number) => {
    const shape = o.shape.map(Number)
    if (raws.length > 0) {
      const b = raws[i]
      const width = o.datatype === 'FP64' || o.datatype === 'INT64' ? 8 : 4
      const data: number[] = []
      for (let k = 0; k < b.length; k += width) {
        data.push(o.datatype === 'FP32' ? b.readFloatLE(k) : o.datatype === 'FP64' ? b.readDoubleLE(k) : o.datatype === 'INT32' ? b.readInt32LE(k) : Number(b.readBigInt64LE(k)))
      }
      out.set(o.name, { name: o.name, datatype: o.datatype, shape, raw: true, data })
      return
    }
    const c = o.contents
    const field = { FP32: 'fp32_contents', FP64: 'fp64_contents', INT32: 'int_contents', INT64: 'int64_contents' }[o.datatype as string] as string
    out.set(o.name, { name: o.name, datatype: o.datatype, shape, raw: false, data: (c?.[field] ?? []).map(Number) })
  })
  return out
}
