import { fail } from '../errors'
import { DecodedTensor, type HostTensor, type TensorData, type WireDType, fmtShape, sizeOf } from './tensor'

/** Largest rank accepted; PyTorch's losses need far fewer. */
export const MAX_RANK = 8

/** Largest dim accepted: ONNX Runtime and typed arrays index with 32-bit integers. */
export const MAX_DIM = 2 ** 31 - 1

const BYTES: Record<WireDType, number> = { float32: 4, float64: 8, int32: 4, int64: 8 }

const EQUALS = 0x3d

/**
 * Whether base64 text of `length` characters, whose last two are the char codes `last` and
 * `beforeLast`, has the form of exactly `bytes` bytes: 4 characters per 3 bytes, ending in the
 * '=' padding the last group needs. With the decoded count this refuses junk without a pass
 * over the text: Node's decoder skips characters outside the alphabet (the count comes out
 * short) and stops at an inner '=' (short too); only in place of the padding could junk leave
 * the count right. Node also reads the URL-safe '-' and '_' as '+' and '/'; they are left
 * accepted, as unambiguous: refusing them takes a scan of the text (two memchr passes, 0.9 to
 * 1.6 ms over 22 MB, against 26 ms for the whole request).
 */
export function base64Fits (bytes: number, length: number, last: number, beforeLast: number): boolean {
  const pad = (3 - bytes % 3) % 3
  return length === 4 * Math.ceil(bytes / 3) && (pad === 0 || last === EQUALS) && (pad < 2 || beforeLast === EQUALS)
}

/**
 * Decodes one tensor argument from any of the three forms of the API (one the body reader
 * already decoded passes through). Nested arrays are
 * read into float64 (the argument's kind decides the dtype later); typed tensors keep theirs.
 * Every failure is a 400 naming the argument.
 */
export function decodeTensor (arg: string, json: unknown): HostTensor {
  if (json instanceof DecodedTensor) return json
  if (typeof json === 'object' && json !== null && !Array.isArray(json)) return decodeTyped(arg, json as Record<string, unknown>)
  const shape = nestedShape(arg, json)
  const data = new Float64Array(sizeOf(shape))
  let k = 0
  eachNested(arg, json, shape, (node, path) => { data[k++] = element(arg + path, node) })
  return { dtype: undefined, shape, data, form: 'nested' }
}

/** The shape of nested arrays, read along their first elements (a non-array is 0-d). */
export function nestedShape (arg: string, json: unknown): number[] {
  const shape: number[] = []
  let probe: unknown = json
  while (Array.isArray(probe)) {
    shape.push(probe.length)
    if (shape.length > MAX_RANK) fail('INVALID_TENSOR', `${arg}: nested deeper than ${MAX_RANK} dimensions`)
    probe = probe[0]
  }
  return shape
}

/**
 * Gives each element of nested arrays of `shape` to `leaf`, in row-major order, with its
 * place (`[i][j]`); an array of another length, or an element where an array belongs (or the
 * reverse), is 400 INVALID_TENSOR naming the place.
 */
export function eachNested (arg: string, json: unknown, shape: readonly number[], leaf: (node: unknown, path: string) => void): void {
  const walk = (node: unknown, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (Array.isArray(node)) fail('INVALID_TENSOR', `${arg}${path}: ragged nested arrays: expected a number at depth ${depth}, got an array`)
      leaf(node, path)
      return
    }
    if (!Array.isArray(node)) fail('INVALID_TENSOR', `${arg}${path}: ragged nested arrays: expected an array of length ${shape[depth]} at depth ${depth}, got ${describe(node)}`)
    if (node.length !== shape[depth]) fail('INVALID_TENSOR', `${arg}${path}: ragged nested arrays: expected length ${shape[depth]} at depth ${depth}, got ${node.length}`)
    for (let i = 0; i < node.length; i++) walk(node[i], depth + 1, `${path}[${i}]`)
  }
  walk(json, 0, '')
}

const TYPED_KEYS = new Set(['dtype', 'shape', 'data'])

function decodeTyped (arg: string, obj: Record<string, unknown>): HostTensor {
  for (const key of Object.keys(obj)) {
    if (!TYPED_KEYS.has(key)) fail('INVALID_TENSOR', `${arg}.${key}: unknown field; a typed tensor has dtype, shape and data`)
  }
  const { dtype, shape, data } = obj
  if (dtype !== 'float32' && dtype !== 'float64' && dtype !== 'int32' && dtype !== 'int64') {
    fail('INVALID_DTYPE', `${arg}.dtype: expected one of float32, float64, int32, int64, got ${JSON.stringify(dtype)}`)
  }
  if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every(d => Number.isInteger(d) && d >= 0 && d <= MAX_DIM)) {
    fail('INVALID_TENSOR', `${arg}.shape: expected an array of at most ${MAX_RANK} integers in [0, ${MAX_DIM}], got ${JSON.stringify(shape)}`)
  }
  const n = sizeOf(shape)
  if (typeof data === 'string') {
    const want = n * BYTES[dtype]
    const chars = 4 * Math.ceil(want / 3)
    const fits = base64Fits(want, data.length, data.charCodeAt(data.length - 1), data.charCodeAt(data.length - 2))
    const bytes = fits ? Buffer.from(data, 'base64') : undefined
    if (bytes === undefined || bytes.length !== want) {
      const got = data.length !== chars ? `${data.length} characters` : 'invalid base64 (a character outside its alphabet, or \'=\' padding missing or misplaced)'
      fail('INVALID_TENSOR', `${arg}.data: base64 must hold ${n} ${dtype} elements (${want} bytes, ${chars} base64 characters) for shape ${fmtShape(shape)}, got ${got}`)
    }
    return { dtype, shape, data: fromBytes(dtype, bytes), form: 'base64' }
  }
  // a Float64Array or Float32Array holds numbers already read (readJson's dataLists, gRPC's float contents)
  const floats = data instanceof Float64Array || data instanceof Float32Array
  if (!Array.isArray(data) && !floats) fail('INVALID_TENSOR', `${arg}.data: expected an array of numbers or a base64 string`)
  if (data.length !== n) fail('INVALID_TENSOR', `${arg}.data: shape ${fmtShape(shape)} needs ${n} elements, got ${data.length}`)
  if (floats && (dtype === 'float64' || dtype === 'float32')) {
    const same = dtype === 'float64' ? data instanceof Float64Array : data instanceof Float32Array
    return { dtype, shape, data: same ? data : dtype === 'float64' ? new Float64Array(data) : new Float32Array(data), form: 'flat' }
  }
  const out = allocate(dtype, n)
  for (let i = 0; i < n; i++) {
    const d = data[i]
    // the place for a message is written only when there is one to give
    const v = typeof d === 'number' ? d : element(`${arg}.data[${i}]`, d)
    if (out instanceof BigInt64Array || out instanceof Int32Array) {
      if (!Number.isInteger(v)) fail('INVALID_TENSOR', `${arg}.data[${i}]: ${dtype} elements must be integers, got ${data[i]}`)
      // JSON numbers past 2^53 arrive rounded: refuse rather than compute on another value
      if (!Number.isSafeInteger(v)) fail('INVALID_TENSOR', `${arg}.data[${i}]: ${v} is not an integer JSON carries exactly (|value| <= 2^53 - 1); send such int64 values as bytes (base64 data, V2's binary form, gRPC's raw_input_contents)`)
      if (out instanceof BigInt64Array) out[i] = BigInt(v)
      else if (v < -2147483648 || v > 2147483647) fail('INVALID_TENSOR', `${arg}.data[${i}]: ${v} does not fit int32`)
      else out[i] = v
    } else out[i] = v
  }
  return { dtype, shape, data: out, form: 'flat' }
}

function element (where: string, v: unknown): number {
  if (typeof v === 'number') return v
  if (v === 'NaN') return NaN
  if (v === 'Infinity') return Infinity
  if (v === '-Infinity') return -Infinity
  return fail('INVALID_TENSOR', `${where}: expected a number or "NaN", "Infinity", "-Infinity", got ${describe(v)}`)
}

function describe (v: unknown): string {
  if (Array.isArray(v)) return 'an array'
  return v === null ? 'null' : typeof v === 'string' ? JSON.stringify(v.length > 20 ? v.slice(0, 20) + '…' : v) : typeof v
}

function allocate (dtype: WireDType, n: number): TensorData {
  switch (dtype) {
    case 'float32': return new Float32Array(n)
    case 'float64': return new Float64Array(n)
    case 'int32': return new Int32Array(n)
    case 'int64': return new BigInt64Array(n)
  }
}

/** Copies little-endian bytes into an aligned typed array (this host is little-endian, as ORT requires). */
function fromBytes (dtype: WireDType, bytes: Buffer): TensorData {
  const copy = new Uint8Array(bytes).buffer
  switch (dtype) {
    case 'float32': return new Float32Array(copy)
    case 'float64': return new Float64Array(copy)
    case 'int32': return new Int32Array(copy)
    case 'int64': return new BigInt64Array(copy)
  }
}
