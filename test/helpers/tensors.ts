/** Test-side tensor forms: fixtures hold typed flat tensors; these turn them into each API form and back. */
export interface Flat { dtype: 'float32' | 'float64' | 'int32' | 'int64', shape: number[], data: Array<number | string> }
export type Form = 'nested' | 'flat' | 'base64'

const num = (v: number | string): number => typeof v === 'number' ? v : v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : -Infinity

/** The tensor in the given API form (nested arrays lose the dtype: float32 or int64 on arrival). */
export function toForm (t: Flat, form: Form): unknown {
  if (form === 'flat') return t
  if (form === 'base64') {
    const Arr = { float32: Float32Array, float64: Float64Array, int32: Int32Array, int64: BigInt64Array }[t.dtype]
    const arr = t.dtype === 'int64' ? BigInt64Array.from(t.data.map(v => BigInt(num(v)))) : (Arr as Float32ArrayConstructor).from(t.data.map(num))
    return { dtype: t.dtype, shape: t.shape, data: Buffer.from(arr.buffer).toString('base64') }
  }
  if (t.shape.length === 0) return t.data[0]
  let k = 0
  const nest = (d: number): unknown[] => Array.from({ length: t.shape[d] }, () => (d === t.shape.length - 1 ? t.data[k++] : nest(d + 1)))
  return nest(0)
}

/** Reads a response tensor of any form back to flat numbers and a shape. */
export function fromForm (v: unknown): { shape: number[], data: number[], dtype?: string } {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const t = v as { dtype: Flat['dtype'], shape: number[], data: unknown }
    if (typeof t.data === 'string') {
      const bytes = Buffer.from(t.data, 'base64')
      const copy = new Uint8Array(bytes).buffer
      const arr = t.dtype === 'float32' ? new Float32Array(copy) : t.dtype === 'float64' ? new Float64Array(copy) : t.dtype === 'int32' ? new Int32Array(copy) : Array.from(new BigInt64Array(copy), Number)
      return { shape: t.shape, data: Array.from(arr as ArrayLike<number>), dtype: t.dtype }
    }
    return { shape: t.shape, data: (t.data as Array<number | string>).map(num), dtype: t.dtype }
  }
  const shape: number[] = []
  for (let p: unknown = v; Array.isArray(p); p = p[0]) shape.push(p.length)
  const flat = (Array.isArray(v) ? (v as unknown[]).flat(Infinity) : [v]) as Array<number | string>
  return { shape, data: flat.map(num) }
}

/** allclose: |a - b| <= atol + rtol |b|, NaN equals NaN, infinities must match exactly. */
export function mismatch (actual: number[], expected: number[], rtol: number, atol: number): string | undefined {
  if (actual.length !== expected.length) return `length ${actual.length} != ${expected.length}`
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]
    const b = expected[i]
    if (Number.isNaN(b) ? Number.isNaN(a) : !Number.isFinite(b) ? a === b : Math.abs(a - b) <= atol + rtol * Math.abs(b)) continue
    return `element ${i}: got ${a}, expected ${b}`
  }
  return undefined
}

/** The API's tolerances: 1e-4 relative and 1e-5 absolute in float32, 1e-9 relative in float64. */
export function tolerance (dtype: string): { rtol: number, atol: number } {
  return dtype === 'float64' ? { rtol: 1e-9, atol: 1e-12 } : { rtol: 1e-4, atol: 1e-5 }
}
