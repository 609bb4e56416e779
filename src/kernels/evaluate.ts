import type * as ort from 'onnxruntime-node'
import { type TensorData } from '../tensor/tensor'
import { encodeTensor } from '../tensor/encode'
import { buildFeeds, buildModel, kernelKey } from './kernel'
import { type PreparedCall } from './prepare'

/** Runs kernels; the in-process session cache or, later, a batcher in front of it. */
export interface KernelRunner {
  run: (key: string, model: () => Uint8Array, feeds: Record<string, ort.Tensor>) => Promise<ort.InferenceSession.OnnxValueMapType>
}

/** The JSON body of a successful response. */
export interface LossResult { loss: unknown, grad?: Record<string, unknown> }

/** Evaluates a prepared call and encodes its result in the request's tensor form. */
export async function evaluate (runner: KernelRunner, call: PreparedCall): Promise<LossResult> {
  const out = await runner.run(kernelKey(call), () => buildModel(call), buildFeeds(call))
  const enc = (t: ort.Tensor): unknown => encodeTensor(call.dtype, t.dims as number[], t.data as TensorData, call.form)
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
