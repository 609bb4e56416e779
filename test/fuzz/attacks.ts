/**
 * Requests known to have killed or broken the service once (out of memory, silent int64
 * wrap-around, stack overflow, allocations the size of a shape, quadratic checks): each must
 * now get a 200 or a 4xx, soon, without the process growing.
 */
import { type Expect } from './oracle'
import { base64 } from './forms'
import { bigInt, deepArray, Raw } from './wire'

/** One known attack: the loss, the body, what the contract requires. */
export interface Attack { name: string, loss: string, body: unknown, expect: Expect }

const f32 = (shape: number[]): { dtype: string, shape: number[], data: string } => ({ dtype: 'float32', shape, data: base64(new Float32Array(shape.reduce((a, b) => a * b, 1))) })
const i64 = (shape: number[], value = 0n): { dtype: string, shape: number[], data: string } => ({ dtype: 'int64', shape, data: base64(new BigInt64Array(shape.reduce((a, b) => a * b, 1)).fill(value)) })
const emptyF32 = (shape: number[]): { dtype: string, shape: number[], data: unknown[] } => ({ dtype: 'float32', shape, data: [] })

/** The attacks, in the order they are sent. */
export const ATTACKS: Attack[] = [
  { name: 'broadcast to [1e9,0] (out of memory)', loss: 'mse', body: { input: [], target: emptyF32([1000000000, 0]), reduction: 'none' }, expect: 'either' },
  { name: 'broadcast to [1e9,0] with grad', loss: 'mse', body: { input: [], target: emptyF32([1000000000, 0]), reduction: 'none', grad: true }, expect: 'either' },
  { name: 'dims of 1e300 beside a 0', loss: 'mse', body: { input: emptyF32([1e300, 0]), target: emptyF32([0, 1e300]), reduction: 'sum' }, expect: 'either' },
  { name: 'a dim of 1e300 with data', loss: 'l1', body: { input: { dtype: 'float32', shape: [1e300], data: [1] }, target: [1] }, expect: 'reject' },
  { name: 'int64 2^64 as a class index (wraps to 0)', loss: 'cross_entropy', body: { input: [[1, 2], [3, 4]], target: { dtype: 'int64', shape: [2], data: [bigInt(2n ** 64n), 1] } }, expect: 'reject' },
  { name: 'int64 2^63 as a class index (wraps to -2^63)', loss: 'multilabel_margin', body: { input: [[0.1, 0.2]], target: { dtype: 'int64', shape: [1, 2], data: [bigInt(2n ** 63n), 0] } }, expect: 'reject' },
  { name: 'int64 2^53+1 as a length', loss: 'ctc', body: { log_probs: [[-0.7, -0.7]], targets: [1], input_lengths: { dtype: 'int64', shape: [], data: [1] }, target_lengths: { dtype: 'int64', shape: [], data: [bigInt(2n ** 53n + 1n)] } }, expect: 'reject' },
  { name: 'input nested 100,000 deep', loss: 'mse', body: { input: deepArray(100000), target: [1] }, expect: 'reject' },
  { name: 'input wrapped in 10,000 arrays', loss: 'mse', body: { input: new Raw('['.repeat(10000) + '[1,2]' + ']'.repeat(10000), '[1,2] in 10000 arrays'), target: [1, 2] }, expect: 'reject' },
  { name: 'typed data nested 100,000 deep', loss: 'mse', body: { input: { dtype: 'float32', shape: [1], data: deepArray(100000) }, target: [1] }, expect: 'reject' },
  { name: 'zero-width class axis', loss: 'cross_entropy', body: { input: emptyF32([2, 0]), target: { dtype: 'int64', shape: [2], data: [0, 0] } }, expect: 'reject' },
  { name: 'zero-width class axis, targets ignored', loss: 'cross_entropy', body: { input: emptyF32([2, 0]), target: { dtype: 'int64', shape: [2], data: [-100, -100] }, grad: true }, expect: 'either' },
  { name: 'zero-width class axis, probabilities', loss: 'cross_entropy', body: { input: emptyF32([2, 0]), target: emptyF32([2, 0]), grad: true }, expect: 'reject' },
  { name: 'multi_margin [0,1e8] (a 1 GB allocation)', loss: 'multi_margin', body: { input: emptyF32([0, 100000000]), target: { dtype: 'int64', shape: [0], data: [] }, grad: true }, expect: 'either' },
  { name: 'multilabel_margin [0,1e8]', loss: 'multilabel_margin', body: { input: emptyF32([0, 100000000]), target: { dtype: 'int64', shape: [0, 100000000], data: [] }, grad: true }, expect: 'either' },
  { name: 'nll [0,1e9]', loss: 'nll', body: { input: emptyF32([0, 1000000000]), target: { dtype: 'int64', shape: [0], data: [] }, grad: true }, expect: 'either' },
  { name: 'softmax_focal [0,1e9] with weight', loss: 'softmax_focal', body: { input: emptyF32([0, 1000000000]), target: { dtype: 'int64', shape: [0], data: [] }, weight: emptyF32([1000000000]) }, expect: 'reject' },
  { name: 'broadcast [65536,1] against [1,65536]', loss: 'mse', body: { input: f32([65536, 1]), target: f32([1, 65536]), grad: true }, expect: 'either' },
  { name: 'margin_ranking [65536,1] against [1,65536]', loss: 'margin_ranking', body: { input1: f32([65536, 1]), input2: f32([1, 65536]), target: { dtype: 'float32', shape: [1, 1], data: [1] }, grad: true }, expect: 'either' },
  {
    name: 'ctc with 100,000 samples of length 0 (a quadratic check)',
    loss: 'ctc',
    body: { log_probs: f32([1, 100000, 2]), targets: i64([0]), input_lengths: i64([100000], 1n), target_lengths: i64([100000]), reduction: 'sum' },
    expect: 'either'
  },
  { name: 'ctc with T = 0', loss: 'ctc', body: { log_probs: emptyF32([0, 1, 2]), targets: [1], input_lengths: [0], target_lengths: [1] }, expect: 'either' },
  { name: 'lovasz_softmax [1,1e9,0,0]', loss: 'lovasz_softmax', body: { input: emptyF32([1, 1000000000, 0, 0]), target: { dtype: 'int64', shape: [1, 0, 0], data: [] } }, expect: 'either' },
  { name: 'dice multiclass [0,1e9,1]', loss: 'dice', body: { input: emptyF32([0, 1000000000, 1]), target: { dtype: 'int64', shape: [0, 1], data: [] }, mode: 'multiclass' }, expect: 'either' },
  { name: 'triplet [0,1e9]', loss: 'triplet_margin', body: { anchor: emptyF32([0, 1000000000]), positive: emptyF32([0, 1000000000]), negative: emptyF32([0, 1000000000]), grad: true }, expect: 'either' }
]
