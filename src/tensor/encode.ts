import { type TensorData, type TensorForm, type WireDType, shortestFloat32 } from './tensor'

/** A non-finite float as the API writes it; finite numbers pass through. */
function jsonNumber (v: number, float32: boolean): number | string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return 'Infinity'
  if (v === -Infinity) return '-Infinity'
  return float32 ? shortestFloat32(v) : v
}

/** Encodes a result tensor in the form of the request's first tensor argument. */
export function encodeTensor (dtype: WireDType, shape: readonly number[], data: TensorData, form: TensorForm): unknown {
  if (form === 'base64') {
    return { dtype, shape, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') }
  }
  const f32 = dtype === 'float32'
  const flat: Array<number | string> = new Array(data.length)
  for (let i = 0; i < data.length; i++) flat[i] = jsonNumber(Number(data[i]), f32)
  if (form === 'flat') return { dtype, shape, data: flat }
  if (shape.length === 0) return flat[0]
  let k = 0
  const nest = (depth: number): unknown[] => {
    const n = shape[depth]
    const out = new Array(n)
    for (let i = 0; i < n; i++) out[i] = depth === shape.length - 1 ? flat[k++] : nest(depth + 1)
    return out
  }
  return nest(0)
}
