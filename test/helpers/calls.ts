import { prepare, type PreparedCall } from '../../src/kernels/prepare'
import { REGISTRY } from '../../src/losses'

/** Prepares a body of the named loss with its options' defaults filled in (as the route's validation does). */
export function preparedCall (name: string, body: Record<string, unknown>): PreparedCall {
  const def = REGISTRY.get(name)
  if (def === undefined) throw new Error(`no loss ${name}`)
  const defaults: Record<string, unknown> = { reduction: 'mean', grad: false }
  for (const [k, s] of Object.entries(def.options)) if ('default' in s) defaults[k] = (s as { default: unknown }).default
  return prepare(def, { ...defaults, ...body })
}
