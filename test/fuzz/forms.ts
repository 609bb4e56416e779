/** A loss's catalog example as typed tensors, and the example's body rebuilt in any tensor form. */
import { type LossDef } from '../../src/losses/loss'
import { type Flat, type Form, fromForm, toForm } from '../helpers/tensors'

/** The example's tensor arguments (and grad_output), each as a typed flat tensor. */
export type Tensors = Record<string, Flat>

/** How the example arrived: its tensors typed, everything else (options, reduction, grad) as is. */
export interface Example { def: LossDef, tensors: Tensors, rest: Record<string, unknown> }

/**
 * Reads a catalog example: nested arrays become float32 for float arguments and int64 for class
 * indices; an argument that takes either holds probabilities when shaped like the first
 * argument and indices otherwise (the API's rule for nested arrays).
 */
export function readExample (def: LossDef, body: Record<string, unknown> = def.example): Example {
  const tensors: Tensors = {}
  const rest: Record<string, unknown> = {}
  const first = def.args[0].name
  for (const [k, v] of Object.entries(body)) {
    const decl = def.args.find(a => a.name === k)
    if (decl === undefined && k !== 'grad_output') {
      rest[k] = v
      continue
    }
    const { shape, data } = fromForm(v)
    const sameAsFirst = tensors[first] !== undefined && shape.join() === tensors[first].shape.join()
    const index = decl?.kind === 'index' || (decl?.kind === 'float-or-index' && !sameAsFirst)
    tensors[k] = { dtype: index ? 'int64' : 'float32', shape, data }
  }
  return { def, tensors, rest }
}

/** Whether a typed tensor holds class indices (its dtype is an integer one). */
export function isIndex (t: Flat): boolean { return t.dtype === 'int32' || t.dtype === 'int64' }

/** The tensor with another element type: float32 <-> float64, int64 <-> int32. */
export function widen (t: Flat, wide: boolean): Flat {
  if (isIndex(t)) return { ...t, dtype: wide ? 'int64' : 'int32' }
  return { ...t, dtype: wide ? 'float64' : 'float32' }
}

/** A tensor in the API form given (nested arrays drop the dtype). */
export function inForm (t: Flat, form: Form): unknown { return toForm(t, form) }

/** The example's body with each tensor in the form `formOf` picks for it. */
export function bodyIn (ex: Example, formOf: (arg: string) => Form, dtypeOf: (arg: string, t: Flat) => Flat = (_, t) => t): Record<string, unknown> {
  const body: Record<string, unknown> = { ...ex.rest }
  for (const [k, t] of Object.entries(ex.tensors)) body[k] = inForm(dtypeOf(k, t), formOf(k))
  return body
}

/** Base64 of a typed array's little-endian bytes. */
export function base64 (a: Float32Array | Float64Array | Int32Array | BigInt64Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64')
}
