import { prepare, type PreparedCall } from '../../src/kernels/prepare'
import { REGISTRY } from '../../src/losses'
import { type TensorMemory } from '../../src/tensor/json-reader'

/** Prepares a body of the named loss with its options' defaults filled in (as the route's validation does); `memory` as the route gives it. */
export function preparedCall (name: string, body: Record<string, unknown>, memory?: TensorMemory): PreparedCall {
  const def = REGISTRY.get(name)
  if (def === undefined) throw new Error(`no loss ${name}`)
  const defaults: Record<string, unknown> = { reduction: 'mean', grad: false }
  for (const [k, s] of Object.entries(def.options)) if ('default' in s) defaults[k] = (s as { default: unknown }).default
  return prepare(def, { ...defaults, ...body }, undefined, memory)
}
