/**
 * Test-side Open Inference Protocol: V2 requests built by hand (JSON and Triton's binary
 * form: a JSON header, its length in Inference-Header-Content-Length, then raw little-endian
 * tensors) and responses read back, independently of src/protocols/v2.
 */
import { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import { type Flat } from '../../helpers/tensors'

/**
 * Load shedding off: many requests right after start-up, with kernels built on the event loop of
 * a busy test machine, would otherwise be shed (shedding has its own tests).
 */
export const NO_SHEDDING = { maxEventLoopDelayMs: 0 }

/** A V2 datatype and the losshub dtype it stands for. */
export const DATATYPE: Record<Flat['dtype'], string> = { float32: 'FP32', float64: 'FP64', int32: 'INT32', int64: 'INT64' }

const num = (v: number | string): number => typeof v === 'number' ? v : v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : -Infinity

/** A flat tensor's little-endian bytes. */
export function bytesOf (t: Flat): Buffer {
  const b = Buffer.alloc(t.data.length * (t.dtype === 'float64' || t.dtype === 'int64' ? 8 : 4))
  t.data.forEach((v, i) => {
    if (t.dtype === 'float32') b.writeFloatLE(num(v), i * 4)
    else if (t.dtype === 'float64') b.writeDoubleLE(num(v), i * 8)
    else if (t.dtype === 'int32') b.writeInt32LE(num(v), i * 4)
    else b.writeBigInt64LE(BigInt(num(v)), i * 8)
  })
  return b
}

/** A V2 input with its data in the JSON. */
export function jsonInput (name: string, t: Flat): Record<string, unknown> {
  return { name, datatype: DATATYPE[t.dtype], shape: t.shape, data: t.data }
}

/** A V2 input announced in the JSON header, its bytes to follow. */
export function binaryInput (name: string, t: Flat): { input: Record<string, unknown>, bytes: Buffer } {
  const bytes = bytesOf(t)
  return { input: { name, datatype: DATATYPE[t.dtype], shape: t.shape, parameters: { binary_data_size: bytes.length } }, bytes }
}

/** The binary form of a request: `header` as JSON, then `tail`; no Content-Type unless given. */
export function binaryBody (header: unknown, tail: Buffer[], headers: Record<string, string> = {}): { payload: Buffer, headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  return { payload: Buffer.concat([json, ...tail]), headers: { 'inference-header-content-length': String(json.length), ...headers } }
}

/** POSTs a JSON inference request (Content-Type application/json). */
export async function inferJson (app: FastifyInstance, model: string, request: unknown): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url: `/v2/models/${model}/infer`, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(request) })
}

/** POSTs a binary-form inference request: each input with `binary: true` travels as bytes. */
export async function inferBinary (app: FastifyInstance, model: string, request: { inputs: Array<{ name: string, t: Flat }>, [k: string]: unknown }, url = `/v2/models/${model}/infer`): Promise<LightMyRequestResponse> {
  const parts = request.inputs.map(({ name, t }) => binaryInput(name, t))
  const { payload, headers } = binaryBody({ ...request, inputs: parts.map(p => p.input) }, parts.map(p => p.bytes))
  return await app.inject({ method: 'POST', url, headers, payload })
}

/** One output of a response, its data as numbers whether it came as JSON or as bytes. */
export interface Output { name: string, datatype: string, shape: number[], binary: boolean, data: number[] }

/** Reads a V2 inference response (JSON, or JSON header and binary outputs). */
export function readResponse (r: LightMyRequestResponse): { json: any, outputs: Map<string, Output> } {
  const length = r.headers['inference-header-content-length']
  const raw = r.rawPayload
  const n = length === undefined ? raw.length : Number(length)
  const json = JSON.parse(raw.subarray(0, n).toString('utf8'))
  const outputs = new Map<string, Output>()
  let offset = n
  for (const o of json.outputs ?? []) {
    const size = o.parameters?.binary_data_size
    if (size === undefined) {
      outputs.set(o.name, { name: o.name, datatype: o.datatype, shape: o.shape, binary: false, data: (o.data as Array<number | string>).map(num) })
      continue
    }
    const bytes = raw.subarray(offset, offset + size)
    offset += size
    const width = o.datatype === 'FP64' || o.datatype === 'INT64' ? 8 : 4
    const data: number[] = []
    for (let i = 0; i < bytes.length; i += width) {
      data.push(o.datatype === 'FP32' ? bytes.readFloatLE(i) : o.datatype === 'FP64' ? bytes.readDoubleLE(i) : o.datatype === 'INT32' ? bytes.readInt32LE(i) : Number(bytes.readBigInt64LE(i)))
    }
    outputs.set(o.name, { name: o.name, datatype: o.datatype, shape: o.shape, binary: true, data })
  }
  if (offset !== raw.length) throw new Error(`response: ${raw.length - offset} bytes after the outputs`)
  return { json, outputs }
}
