import { type BatchPlan, batchFeeds, batchPlan, splitOutputs } from '../kernels/batch'
import { type RunCost, runCost } from '../kernels/executor'
import { buildFeeds, buildModel, kernelKey } from '../kernels/kernel'
import { type Cost, type PreparedCall } from '../kernels/prepare'
import { type KernelTensors } from '../kernels/tensors'

/** One kernel run, as the executor takes it. */
export interface KernelRun {
  /** The kernel's cache key. */
  key: string
  /** What the run is reported as (the loss's name). */
  name: string
  /** Builds the kernel's model, when the executor has no session for `key` yet. */
  model: () => Uint8Array
  /** Makes the inputs; made again for a retry on a fresh worker (RunOptions.rebuild). */
  feeds: () => KernelTensors
  /** What the run costs; unknown when a call's cost is. */
  cost?: RunCost
}

/**
 * All the batcher needs of the kernels of calls of type `C`: what a call costs, which calls it
 * may run with, the kernel run of some calls, and each call's share of a batch's outputs.
 */
export interface BatchKernels<C> {
  /** What a call costs, for its lane and the queue's bytes; undefined counts as small. */
  cost: (call: C) => Cost | undefined
  /** The batch group of a call, its rows and elements; undefined: it runs alone. */
  plan: (call: C) => BatchPlan | undefined
  /** The kernel run of `calls`: one call runs alone, several (of one batch group) as one batch. */
  run: (calls: readonly C[]) => KernelRun
  /** Each call's share of a batch's outputs, in the order of `calls`. */
  split: (calls: readonly C[], out: KernelTensors) => KernelTensors[]
}

/** The kernels of prepared loss calls (src/kernels): the batcher of the service. */
export const preparedKernels: BatchKernels<PreparedCall> = {
  cost: call => call.cost,
  plan: batchPlan,
  run: calls => {
    const batched = calls.length > 1
    return {
      key: kernelKey(calls[0], batched),
      name: calls[0].def.name,
      model: () => buildModel(calls[0], batched),
      feeds: () => (batched ? batchFeeds(calls) : buildFeeds(calls[0])),
      cost: runCost(calls)
    }
  },
  split: splitOutputs
}
