/**
 * typedContentsDecoder: packed fp32/fp64 contents taken from the bytes as typed arrays; every
 * message decodes to what the .proto's own decoder gives (typed arrays read as arrays), and a
 * message it refuses is refused the same.
 */
import * as protoLoader from '@grpc/proto-loader'
import fc from 'fast-check'
import t from 'tap'
import { protoFile } from '../../../src/protocols/v2/grpc'
import { typedContentsDecoder, typedContentsEncoder } from '../../../src/protocols/v2/grpc-contents'
import { GRPC_LOADER_OPTIONS, type ModelInferRequest, type ModelInferResponse } from '../../../src/protocols/v2/grpc-messages'

const infer = (protoLoader.loadSync(protoFile('grpc_service.proto'), GRPC_LOADER_OPTIONS)['inference.GRPCInferenceService'] as protoLoader.ServiceDefinition).ModelInfer
const plain = (bytes: Buffer): ModelInferRequest => infer.requestDeserialize(bytes) as ModelInferRequest
const typed = typedContentsDecoder(plain)

/** The decoded message with typed arrays as plain arrays, for a deep comparison (NaN as a string). */
const canonical = (m: unknown): string => JSON.stringify(m, (_, v: unknown) => ArrayBuffer.isView(v) ? Array.from(v as Float32Array) : typeof v === 'number' && Number.isNaN(v) ? 'NaN' : v)

/** What decoding gives: the message, or that it threw. */
function outcome (decode: (b: Buffer) => ModelInferRequest, bytes: Buffer): string {
  try {
    return canonical(decode(bytes))
  } catch {
    return 'refused'
  }
}

const f32 = fc.float({ noDefaultInfinity: false }).map(Math.fround)
const contents = fc.oneof(
  fc.record({ fp32_contents: fc.array(f32, { maxLength: 40 }) }),
  fc.record({ fp64_contents: fc.array(fc.double(), { maxLength: 40 }) }),
  fc.record({ int64_contents: fc.array(fc.integer({ min: -1000, max: 1000 }), { maxLength: 5 }) }),
  fc.record({ fp32_contents: fc.array(f32, { maxLength: 5 }), int_contents: fc.array(fc.integer({ min: -9, max: 9 }), { maxLength: 5 }) }),
  fc.constant({})
)
const input = fc.record({
  name: fc.string({ maxLength: 8 }),
  datatype: fc.constantFrom('FP32', 'FP64', 'INT64', 'BOOL'),
  shape: fc.array(fc.nat({ max: 50 }), { maxLength: 3 }),
  parameters: fc.dictionary(fc.string({ maxLength: 4 }), fc.record({ bool_param: fc.boolean() }), { maxKeys: 2 }),
  contents
}, { requiredKeys: ['name'] })
const request = fc.record({
  model_name: fc.string({ maxLength: 8 }),
  id: fc.string({ maxLength: 8 }),
  parameters: fc.dictionary(fc.string({ maxLength: 4 }), fc.record({ double_param: fc.double() }), { maxKeys: 2 }),
  inputs: fc.array(input, { maxLength: 4 }),
  outputs: fc.array(fc.record({ name: fc.string({ maxLength: 6 }) }), { maxLength: 2 }),
  raw_input_contents: fc.array(fc.uint8Array({ maxLength: 8 }).map(a => Buffer.from(a)), { maxLength: 2 })
}, { requiredKeys: [] })

t.test('every message decodes to what the .proto\'s decoder gives; float contents as typed arrays', async t => {
  let lifted = 0
  fc.assert(fc.property(request, r => {
    const bytes = infer.requestSerialize(r)
    const got = typed(bytes)
    if (canonical(got) !== canonical(plain(bytes))) throw new Error(`${canonical(got)} vs ${canonical(plain(bytes))}`)
    for (const i of got.inputs) {
      const c = i.contents ?? {}
      if (c.fp32_contents instanceof Float32Array || c.fp64_contents instanceof Float64Array) lifted++
      if (((c.fp32_contents?.length ?? 0) > 0 && !(c.fp32_contents instanceof Float32Array)) || ((c.fp64_contents?.length ?? 0) > 0 && !(c.fp64_contents instanceof Float64Array))) throw new Error('float contents left as an array')
    }
  }), { seed: 20261127, numRuns: 400 })
  t.ok(lifted > 200, `float contents taken as typed arrays (${lifted} inputs)`)
})

t.test('a message with bytes changed, cut or added decodes, or is refused, as the .proto\'s decoder does', async t => {
  let refused = 0
  fc.assert(fc.property(request, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), fc.nat(), (r, edits, cut) => {
    const bytes = Buffer.from(infer.requestSerialize(r))
    if (bytes.length === 0) return
    for (const [at, b] of edits) bytes[at % bytes.length] = b
    const mutated = cut % 3 === 0 ? bytes.subarray(0, cut % bytes.length) : bytes
    const [a, b] = [outcome(typed, mutated), outcome(plain, mutated)]
    if (a !== b) throw new Error(`${a} vs ${b}`)
    if (a === 'refused') refused++
  }), { seed: 20261128, numRuns: 600 })
  t.ok(refused > 50, `some were refused by both (${refused})`)
})

t.test('several runs of one field, unpacked elements, or a run of no whole number of floats: left to the decoder', async t => {
  // InferInputTensor 'x' with contents holding fp32_contents twice (two packed runs merge: [1, 2])
  const run = (field: number, bytes: number[]): number[] => [(field << 3) | 2, bytes.length, ...bytes]
  const one = Array.from(Buffer.from(Float32Array.of(1).buffer))
  const two = Array.from(Buffer.from(Float32Array.of(2).buffer))
  const contents = [...run(6, one), ...run(6, two)]
  const message = Buffer.from(run(5, [...run(1, [0x78]), ...run(5, contents)]))
  t.same(Array.from(typed(message).inputs[0].contents?.fp32_contents ?? []), [1, 2], 'two runs: the decoder merges them')
  // an unpacked element (wire type 5) of fp32_contents
  const unpacked = Buffer.from(run(5, [...run(1, [0x78]), ...run(5, [(6 << 3) | 5, ...one])]))
  t.same(Array.from(typed(unpacked).inputs[0].contents?.fp32_contents ?? []), [1], 'unpacked: the decoder reads it')
  t.equal(outcome(typed, Buffer.from(run(5, run(5, run(6, [0, 0, 0]))))), outcome(plain, Buffer.from(run(5, run(5, run(6, [0, 0, 0]))))), '3 bytes of fp32: as the decoder does')
})

t.test('a response with float contents as typed arrays is the bytes the .proto\'s encoder writes of them as arrays', async t => {
  const encode = (m: ModelInferResponse): Buffer => infer.responseSerialize(m)
  const typedEncode = typedContentsEncoder(encode)
  const output = fc.record({
    name: fc.string({ maxLength: 8 }),
    datatype: fc.constantFrom('FP32', 'FP64', 'INT64'),
    shape: fc.array(fc.nat({ max: 50 }), { maxLength: 3 }),
    contents: fc.oneof(
      fc.array(f32, { maxLength: 40 }).map(a => ({ fp32_contents: a })),
      fc.array(fc.double(), { maxLength: 40 }).map(a => ({ fp64_contents: a })),
      fc.array(fc.integer({ min: -5, max: 5 }).map(String), { maxLength: 4 }).map(a => ({ int64_contents: a }))
    )
  })
  const response = fc.record({
    model_name: fc.string({ maxLength: 8 }),
    model_version: fc.constant('1'),
    id: fc.string({ maxLength: 8 }),
    outputs: fc.array(output, { maxLength: 4 }),
    raw_output_contents: fc.array(fc.uint8Array({ maxLength: 8 }).map(a => Buffer.from(a)), { maxLength: 2 })
  })
  let typedOutputs = 0
  fc.assert(fc.property(response, r => {
    const asTyped: ModelInferResponse = {
      ...r,
      outputs: r.outputs.map(o => {
        const c = o.contents as { fp32_contents?: number[], fp64_contents?: number[] }
        if (c.fp32_contents !== undefined) { typedOutputs++; return { ...o, contents: { fp32_contents: Float32Array.from(c.fp32_contents) } } }
        if (c.fp64_contents !== undefined) { typedOutputs++; return { ...o, contents: { fp64_contents: Float64Array.from(c.fp64_contents) } } }
        return o
      })
    }
    const [got, want] = [typedEncode(asTyped), encode(r as ModelInferResponse)]
    if (!got.equals(want)) throw new Error(`${got.toString('hex')} vs ${want.toString('hex')}`)
  }), { seed: 20261129, numRuns: 400 })
  t.ok(typedOutputs > 300, `outputs written from typed arrays (${typedOutputs})`)
})

t.test('a run that cannot be put in its place: the response is encoded with arrays instead, nothing lost', async t => {
  const seen: unknown[] = []
  // an encoder whose bytes hold no outputs field at all
  const odd = typedContentsEncoder(m => { seen.push(m.outputs.map(o => o.contents)); return Buffer.from([0x0a, 0x01, 0x78]) })
  odd({ model_name: 'x', model_version: '1', id: '', outputs: [{ name: 'loss', datatype: 'FP32', shape: [2], contents: { fp32_contents: Float32Array.of(1.5, -2) } }], raw_output_contents: [] })
  t.same(seen, [[{}], [{ fp32_contents: [1.5, -2], fp64_contents: undefined }]], 'first with the contents left out, then again with them as an array')
})

t.test('an input whose contents come in two parts is read whole, as protobuf merges them (the .proto\'s decoder keeps the last)', async t => {
  // by hand: a length-delimited field (all lengths here under 128)
  const field = (n: number, value: Uint8Array | string): Buffer => Buffer.concat([Buffer.from([n * 8 + 2, Buffer.byteLength(value)]), Buffer.from(value)])
  const floats = (v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer)
  // InferInputTensor: name 1, datatype 2, shape 3 (packed), contents 5 (InferTensorContents: fp32_contents 6)
  const input = Buffer.concat([field(1, 'input'), field(2, 'FP32'), field(3, Uint8Array.from([2])), field(5, field(6, floats([1, 2]))), field(5, field(6, floats([5, 6])))])
  // ModelInferRequest: model_name 1, inputs 5
  const bytes = Buffer.concat([field(1, 'mse'), field(5, input)])
  t.same(Array.from(plain(bytes).inputs[0].contents?.fp32_contents ?? []), [5, 6], 'the .proto\'s decoder alone: the last part')
  const got = typed(bytes).inputs[0]
  t.same([got.name, got.datatype, got.shape.map(Number)], ['input', 'FP32', [2]], 'the rest of the input as sent')
  t.same(Array.from(got.contents?.fp32_contents ?? []), [1, 2, 5, 6], 'both parts: four values (for shape [2], a tensor the request check refuses)')
  // one part of each kind: merged, each kind kept
  const mixed = Buffer.concat([field(1, 'mse'), field(5, Buffer.concat([field(1, 'x'), field(5, field(6, floats([1]))), field(5, field(7, new Uint8Array(Float64Array.from([2]).buffer)))]))])
  const m = typed(mixed).inputs[0].contents
  t.same([Array.from(m?.fp32_contents ?? []), Array.from(m?.fp64_contents ?? [])], [[1], [2]])
})
