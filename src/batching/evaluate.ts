import { type Batcher } from './batcher'
import { type Departure } from './departure'
import { TensorOut } from '../tensor/json-writer'
import { type PreparedCall } from '../kernels/prepare'
import { type KernelTensor } from '../kernels/tensors'

/** The JSON body of a successful response. */
export interface LossResult { loss: unknown, grad?: Record<string, unknown> }

/**
 * Evaluates a prepared call through the batcher; its result's tensors are `TensorOut`s in the
 * request's tensor form, for `writeJson` to write straight from the output arrays.
 */
export async function evaluate (batcher: Batcher, call: PreparedCall, signal?: Departure): Promise<LossResult> {
  const out = await batcher.submit(call, signal)
  const enc = (t: KernelTensor): TensorOut => new TensorOut(call.dtype, t.dims, t.data, call.form)
  const result: LossResult = { loss: enc(out.loss) }
  if (call.grad) {
    result.grad = {}
    for (const decl of call.def.args) {
      const t = out[`grad_${decl.name}`]
      if (t !== undefined) result.grad[decl.name] = enc(t)
    }
  }
  return result
}
