import { type Batcher } from './batcher'
import { type Departure } from './departure'
import { TensorOut } from '../tensor/json-writer'
import { type CompositeBody, type CompositeCall, type CompositeEnv, prepareComposite, termOutput } from '../kernels/composite'
import { type KernelTensor, type KernelTensors } from '../kernels/tensors'

/** The JSON body of a successful composite. */
export interface CompositeResult {
  total: unknown
  terms: Array<{ loss: string, name?: string, value: unknown }>
  grad?: Record<string, unknown>
}

/** What evaluating a composite needs: preparing it (CompositeEnv) and the batcher that runs it. */
export interface CompositeContext extends CompositeEnv { batcher: Batcher }

/**
 * Evaluates a composite body (schema-checked against CompositeRequest): validates and prepares
 * it, runs its one kernel through the batcher, and encodes the result. The entry point of
 * `POST /losses`, and of any other protocol that serves composites.
 */
export async function evaluateComposite (body: CompositeBody, ctx: CompositeContext, signal?: Departure): Promise<CompositeResult> {
  const composite = prepareComposite(body, ctx)
  const out = await ctx.batcher.submit(composite.call, signal)
  return compositeResult(composite, out)
}

/**
 * The reply: `total` and reduced term values as JSON numbers (non-finite ones as strings) in
 * every form, `reduction: "none"` values and gradients in the form of the first tensor.
 */
export function compositeResult (composite: CompositeCall, out: KernelTensors): CompositeResult {
  const { dtype, form } = composite.call
  const enc = (t: KernelTensor): TensorOut => new TensorOut(dtype, t.dims, t.data, t.dims.length === 0 ? 'nested' : form)
  const result: CompositeResult = {
    total: enc(out.loss),
    terms: composite.terms.map((t, i) => {
      const value = enc(out[termOutput(i)])
      return t.name === undefined ? { loss: t.loss, value } : { loss: t.loss, name: t.name, value }
    })
  }
  // fromEntries: a tensor may be named __proto__, which must stay a plain key
  if (composite.call.grad) result.grad = Object.fromEntries(composite.grads.map(g => [g.tensor, enc(out[`grad_${g.input}`])]))
  return result
}
