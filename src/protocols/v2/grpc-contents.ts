/**
 * Typed float contents of ModelInfer's messages, straight between typed arrays and the bytes.
 * Decoded as usual, `fp32_contents` and `fp64_contents` become arrays of JS numbers, element by
 * element, and are copied once more into plain objects (and the same on the way out): for a
 * [256,1000] tensor most of a call's time, much of it garbage collection. Here a request's
 * packed runs of floats are copied into typed arrays and the rest of the message decoded as
 * before; a response is encoded without its float contents, which are then put in as runs.
 */
import { type ModelInferRequest, type ModelInferResponse } from './grpc-messages'

/**
 * A ModelInferRequest decoder that gives packed float contents as typed arrays: `decode` (the
 * .proto's own) reads the rest of the message; what it refuses, it refuses as before.
 */
export function typedContentsDecoder (decode: (bytes: Buffer) => ModelInferRequest): (bytes: Buffer) => ModelInferRequest {
  return bytes => {
    const taken = liftFloatContents(bytes)
    // an input with several contents is never lifted: only the decoder's path needs them joined
    if (taken === undefined) return decode(mergeRepeatedContents(bytes))
    const request = decode(taken.rest)
    for (const { input, field, data } of taken.lifted) {
      const contents = request.inputs[input].contents ??= {}
      contents[field] = data as Float32Array & Float64Array
    }
    return request
  }
}

/**
 * A ModelInferResponse encoder that takes float contents as typed arrays: `encode` (the .proto's
 * own) writes the message with those contents empty, and each output's run of floats is put in
 * its contents, where the encoder would have written it (the same bytes).
 */
export function typedContentsEncoder (encode: (response: ModelInferResponse) => Buffer): (response: ModelInferResponse) => Buffer {
  return response => {
    const runs = new Map<number, { field: number, bytes: Uint8Array }>()
    const outputs = response.outputs.map((o, i) => {
      const data = o.contents?.fp32_contents ?? o.contents?.fp64_contents
      if (data === undefined || !ArrayBuffer.isView(data)) return o
      if (data.length > 0) runs.set(i, { field: data instanceof Float32Array ? FP32 : FP64, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) })
      return { ...o, contents: {} }
    })
    const bytes = encode({ ...response, outputs })
    if (runs.size === 0) return bytes
    const parts: Uint8Array[] = []
    let output = 0
    let copiedTo = 0
    for (const f of scan(bytes, 0, bytes.length) ?? []) {
      if (f.field !== OUTPUTS) continue
      const run = runs.get(output++)
      if (run === undefined) continue
      const c = scan(bytes, f.start, f.end)?.find(x => x.field === CONTENTS)
      if (c === undefined) break
      const contents = tagged(CONTENTS, [bytes.subarray(c.start, c.end), tagged(run.field, [run.bytes])])
      parts.push(bytes.subarray(copiedTo, f.at), tagged(OUTPUTS, [bytes.subarray(f.start, c.at), contents, bytes.subarray(c.end, f.end)]))
      copiedTo = f.end
      runs.delete(output - 1)
    }
    // every run put in its place; were the encoder's bytes ever not as read here, arrays are encoded instead
    if (runs.size > 0) return encode({ ...response, outputs: response.outputs.map(asArrays) })
    parts.push(bytes.subarray(copiedTo))
    return Buffer.concat(parts)
  }
}

/** An output with typed float contents as plain arrays, as the .proto's encoder takes them. */
function asArrays (o: ModelInferResponse['outputs'][number]): ModelInferResponse['outputs'][number] {
  const c = o.contents
  if (c === undefined) return o
  const plain = (a: ArrayLike<number> | undefined): number[] | undefined => a === undefined ? undefined : Array.from(a)
  return { ...o, contents: { ...c, fp32_contents: plain(c.fp32_contents), fp64_contents: plain(c.fp64_contents) } }
}

/** Field numbers of proto/grpc_service.proto. */
const INPUTS = 5 // ModelInferRequest.inputs
const RAW_INPUTS = 7 // ModelInferRequest.raw_input_contents
const OUTPUTS = 5 // ModelInferResponse.outputs
const CONTENTS = 5 // InferInputTensor.contents, InferOutputTensor.contents
const FP32 = 6 // InferTensorContents.fp32_contents
const FP64 = 7 // InferTensorContents.fp64_contents

const LEN = 2 // wire type of length-delimited fields (and of packed repeated scalars)

/** A typed array of contents taken from input `input` (its index in `inputs`), under `field`. */
export interface LiftedContents { input: number, field: 'fp32_contents' | 'fp64_contents', data: Float32Array | Float64Array }

/**
 * The message without the packed float contents of its inputs, and those contents as typed
 * arrays; undefined when there are none, or anything about them is unusual (several runs of
 * one field, unpacked elements, a length that is no whole number of elements, a malformed
 * message): the message is then decoded as it is, with the decoder's own checks.
 */
export function liftFloatContents (bytes: Uint8Array): { rest: Buffer, lifted: LiftedContents[] } | undefined {
  const lifted: LiftedContents[] = []
  const parts: Uint8Array[] = []
  let input = 0
  let copiedTo = 0
  const fields = scan(bytes, 0, bytes.length)
  if (fields === undefined) return undefined
  for (const f of fields) {
    if (f.field !== INPUTS) continue
    if (f.wire !== LEN) return undefined
    const inner = liftInput(bytes, f.start, f.end, input, lifted)
    input++
    if (inner === undefined) return undefined
    if (inner === NOTHING) continue
    parts.push(bytes.subarray(copiedTo, f.at), tagged(f.field, inner))
    copiedTo = f.end
  }
  if (lifted.length === 0) return undefined
  parts.push(bytes.subarray(copiedTo))
  return { rest: Buffer.concat(parts), lifted }
}

const NOTHING: Uint8Array[] = []

/**
 * The message with an input's several `contents` fields joined into one. Protobuf merges the
 * copies of a message field given more than once (as if their bytes were one: repeated
 * elements add up), where the .proto's decoder keeps only the last: an input whose contents
 * came in two parts was read as its last part alone, and could pass as a smaller tensor. The
 * same bytes when no input has several.
 */
export function mergeRepeatedContents (bytes: Buffer): Buffer {
  const fields = scan(bytes, 0, bytes.length)
  if (fields === undefined) return bytes
  const parts: Uint8Array[] = []
  let copiedTo = 0
  for (const f of fields) {
    if (f.field !== INPUTS || f.wire !== LEN) continue
    const inner = scan(bytes, f.start, f.end) ?? []
    const contents = inner.filter(x => x.field === CONTENTS)
    // one, or of another wire type (the decoder refuses that): nothing to merge
    if (contents.length < 2 || contents.some(c => c.wire !== LEN)) continue
    const rest = inner.filter(x => x.field !== CONTENTS).map(x => bytes.subarray(x.at, x.end))
    parts.push(bytes.subarray(copiedTo, f.at), tagged(INPUTS, [...rest, tagged(CONTENTS, contents.map(c => bytes.subarray(c.start, c.end)))]))
    copiedTo = f.end
  }
  if (parts.length === 0) return bytes
  parts.push(bytes.subarray(copiedTo))
  return Buffer.concat(parts)
}

/**
 * An InferInputTensor (bytes [start, end)) without its lifted contents, as parts to join; NOTHING
 * when it has no float contents to lift; undefined when anything is unusual.
 */
function liftInput (bytes: Uint8Array, start: number, end: number, input: number, lifted: LiftedContents[]): Uint8Array[] | undefined {
  const fields = scan(bytes, start, end)
  if (fields === undefined) return undefined
  const contents = fields.filter(f => f.field === CONTENTS)
  if (contents.length === 0) return NOTHING
  // several contents fields: left to the decoder, once joined (mergeRepeatedContents)
  if (contents.length > 1 || contents[0].wire !== LEN) return undefined
  const c = contents[0]
  const inner = scan(bytes, c.start, c.end)
  if (inner === undefined) return undefined
  const floats = inner.filter(f => f.field === FP32 || f.field === FP64)
  if (floats.length === 0) return NOTHING
  if (floats.length > 1 || floats[0].wire !== LEN) return undefined
  const run = floats[0]
  const size = run.field === FP32 ? 4 : 8
  if ((run.end - run.start) % size !== 0) return undefined
  // a copy: aligned, and the message's memory is not kept
  const copy = new Uint8Array(bytes.subarray(run.start, run.end)).buffer
  lifted.push({ input, field: run.field === FP32 ? 'fp32_contents' : 'fp64_contents', data: run.field === FP32 ? new Float32Array(copy) : new Float64Array(copy) })
  const rest = [bytes.subarray(c.start, run.at), bytes.subarray(run.end, c.end)]
  return [bytes.subarray(start, c.at), tagged(CONTENTS, rest), bytes.subarray(c.end, end)]
}

/**
 * Where the first raw_input_contents' bytes start in a ModelInferRequest that begins with
 * `bytes`: their offset; 'more' when the bytes end before that is known; undefined when the
 * fields do not parse. Fields are skipped by their lengths, whose bytes need not be there.
 */
export function rawContentsStart (bytes: Uint8Array): number | 'more' | undefined {
  let p = 0
  while (p < bytes.length) {
    const f = fieldAt(bytes, p, bytes.length)
    if (f === 'cut' || f === undefined) return f === 'cut' ? 'more' : undefined
    if (f.field === RAW_INPUTS && f.wire === LEN) return f.start
    p = f.end
  }
  return 'more'
}

/** One field of a message: its number and wire type, where its tag starts, and its value's bytes [start, end). */
interface Field { field: number, wire: number, at: number, start: number, end: number }

/** The fields of the message in bytes [from, to), or undefined when they do not parse. */
function scan (bytes: Uint8Array, from: number, to: number): Field[] | undefined {
  const out: Field[] = []
  let p = from
  while (p < to) {
    const f = fieldAt(bytes, p, to)
    if (typeof f !== 'object' || f.end > to) return undefined
    out.push(f)
    p = f.end
  }
  return out
}

/**
 * The field whose tag starts at p (before `to`); its value may end past `to`. 'cut' when its
 * tag or length is cut short by `to` (fewer than a varint's 8 bytes left); undefined when it
 * does not parse.
 */
function fieldAt (bytes: Uint8Array, p: number, to: number): Field | 'cut' | undefined {
  const at = p
  const cut = (q: number): 'cut' | undefined => to - q < 8 ? 'cut' : undefined
  const tag = varint(bytes, p, to)
  if (tag === undefined) return cut(p)
  p = tag.next
  const wire = tag.value % 8
  const field = Math.floor(tag.value / 8)
  if (field === 0) return undefined
  if (wire === 0) {
    const v = varint(bytes, p, to)
    return v === undefined ? cut(p) : { field, wire, at, start: p, end: v.next }
  }
  if (wire === 1) return { field, wire, at, start: p, end: p + 8 }
  if (wire === 5) return { field, wire, at, start: p, end: p + 4 }
  if (wire !== LEN) return undefined
  const n = varint(bytes, p, to)
  return n === undefined ? cut(p) : { field, wire, at, start: n.next, end: n.next + n.value }
}

/** A varint at p (before `to`) and the position after it; undefined past 2^53 or cut short. */
function varint (bytes: Uint8Array, p: number, to: number): { value: number, next: number } | undefined {
  let value = 0
  let scale = 1
  for (let i = 0; i < 8 && p < to; i++) {
    const b = bytes[p++]
    value += (b & 0x7f) * scale
    if (b < 0x80) return { value, next: p }
    scale *= 128
  }
  return undefined
}

/** A length-delimited field `field` holding `parts`: its tag, its length, the parts. */
function tagged (field: number, parts: Uint8Array[]): Uint8Array {
  const head: number[] = []
  putVarint(head, field * 8 + LEN)
  putVarint(head, parts.reduce((n, part) => n + part.length, 0))
  return Buffer.concat([Uint8Array.from(head), ...parts])
}

/** Appends v (a non-negative integer) as a varint. */
function putVarint (out: number[], v: number): void {
  while (v >= 128) {
    out.push((v % 128) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
}
