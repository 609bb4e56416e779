import t from 'tap'
import { build, postLoss } from '../helpers/app'

/** A typed flat tensor (zeros unless `data` is given). */
const typed = (dtype: string, shape: number[], data?: number[]): Record<string, unknown> =>
  ({ dtype, shape, data: data ?? Array<number>(shape.reduce((a, b) => a * b, 1)).fill(0) })

// The 4xx paths of the ranking and segmentation losses: status, code, and a message naming the
// argument or option at fault. (Their values and gradients are checked by fixtures.test.ts.)
t.test('ranking and segmentation losses reject what their references cannot take', async t => {
  const app = await build(t)
  const pair = { input1: [[1, 0], [0, 1]], input2: [[1, 1], [1, 0]] }
  const triplet = { anchor: [[0, 1], [1, 0]], positive: [[0, 1], [1, 1]], negative: [[1, 1], [0, 0]] }
  const seg4 = [[[[1, -1], [0.5, 2]], [[0, 1], [1, 0]]]] // [1,2,2,2]
  const cases: Array<[string, string, Record<string, unknown>, string, RegExp]> = [
    ['margin_ranking target not a sign', 'margin_ranking', { input1: [1, 2], input2: [2, 1], target: [1, 0] }, 'DOMAIN_ERROR', /^target: elements must be 1 or -1, got 0 at flat position 1/],
    ['margin_ranking ranks differ', 'margin_ranking', { input1: [[1, 2]], input2: [2, 1], target: [[1, -1]] }, 'SHAPE_MISMATCH', /^input1, input2, target: must have the same number of dims/],
    ['margin_ranking shapes do not broadcast', 'margin_ranking', { input1: [1, 2], input2: [2, 1, 3], target: [1, 1] }, 'SHAPE_MISMATCH', /^input1, input2, target: shapes .* do not broadcast/],
    ['hinge_embedding target not a sign', 'hinge_embedding', { input: [0.5, 2], target: [1, 2] }, 'DOMAIN_ERROR', /^target: elements must be 1 or -1, got 2/],
    ['cosine_embedding input rank', 'cosine_embedding', { input1: [[[1]]], input2: [[[1]]], target: [1] }, 'SHAPE_MISMATCH', /^input1: expected vectors \[N,D\]/],
    ['cosine_embedding input2 shape', 'cosine_embedding', { input1: pair.input1, input2: [[1, 1, 1], [1, 0, 0]], target: [1, -1] }, 'SHAPE_MISMATCH', /^input2: expected the shape of input1 \[2,2\], got \[2,3\]/],
    ['cosine_embedding target shape', 'cosine_embedding', { ...pair, target: [1, -1, 1] }, 'SHAPE_MISMATCH', /^target: expected one value per pair, shape \[2\] for input1 \[2,2\], got \[3\]/],
    ['cosine_embedding target not a sign', 'cosine_embedding', { ...pair, target: [1, 0.5] }, 'DOMAIN_ERROR', /^target: elements must be 1 or -1/],
    ['cosine_similarity target outside [-1, 1]', 'cosine_similarity', { ...pair, target: [0.5, 1.5] }, 'DOMAIN_ERROR', /^target: elements must lie in \[-1, 1\], got 1\.5/],
    ['triplet_margin shapes', 'triplet_margin', { ...triplet, negative: [[1, 1]] }, 'SHAPE_MISMATCH', /^negative: expected the shape of anchor \[2,2\], got \[1,2\]/],
    ['triplet_margin p', 'triplet_margin', { ...triplet, p: 0 }, 'INVALID_OPTION', /^p: the norm degree must be positive, got 0/],
    ['triplet_margin cosine on one vector', 'triplet_margin', { anchor: [0, 1], positive: [1, 1], negative: [1, 0], distance: 'cosine' }, 'SHAPE_MISMATCH', /^anchor: distance "cosine" takes batches of vectors \[N,D\], got \[2\]/],
    ['lovasz_hinge reduction without per_image', 'lovasz_hinge', { input: [[1, -1]], target: [[1, 0]], per_image: false, reduction: 'sum' }, 'INVALID_OPTION', /^reduction: "sum" needs per_image: true/],
    ['lovasz_hinge input rank', 'lovasz_hinge', { input: [1, -1], target: [1, 0] }, 'SHAPE_MISMATCH', /^input: expected logits \[N,H,W\] \(or \[N,P\]\), got \[2\]/],
    ['lovasz_hinge target shape', 'lovasz_hinge', { input: [[1, -1]], target: [[1, 0, 1]] }, 'SHAPE_MISMATCH', /^target: expected shape \[1,2\]/],
    ['lovasz_hinge label', 'lovasz_hinge', { input: [[1, -1]], target: [[1, 2]] }, 'DOMAIN_ERROR', /^target: elements must be 0 or 1 \(or ignore_index -100\), got 2 at flat position 1/],
    ['lovasz_softmax reduction without per_image', 'lovasz_softmax', { input: seg4, target: [[[0, 1], [1, 0]]], reduction: 'none' }, 'INVALID_OPTION', /^reduction: "none" needs per_image: true/],
    ['lovasz_softmax input rank', 'lovasz_softmax', { input: [[1, 2]], target: [0] }, 'SHAPE_MISMATCH', /^input: expected \[N,C,H,W\] \(or \[N,C,P\]\), got \[1,2\]/],
    ['lovasz_softmax target shape', 'lovasz_softmax', { input: seg4, target: [[0, 1]] }, 'SHAPE_MISMATCH', /^target: expected shape \[1,2,2\] \(the input's shape \[1,2,2,2\] without dim C\), got \[1,2\]/],
    ['lovasz_softmax class out of range', 'lovasz_softmax', { input: seg4, target: [[[0, 2], [1, 0]]] }, 'INDEX_OUT_OF_RANGE', /^target: class index 2 at flat position 1 is out of range \[0, 2\) \(ignore_index is -100\)/],
    ['dice mode missing', 'dice', { input: seg4, target: [[[0, 1], [1, 0]]] }, 'INVALID_REQUEST', /^mode: required field is missing/],
    ['dice reduction', 'dice', { input: seg4, target: [[[0, 1], [1, 0]]], mode: 'multiclass', reduction: 'sum' }, 'INVALID_REQUEST', /^reduction: must be one of "mean"/],
    ['dice multiclass float target', 'dice', { input: seg4, target: seg4, mode: 'multiclass' }, 'INVALID_DTYPE', /^target: mode "multiclass" takes class indices .* mode "multilabel"/],
    ['dice multiclass class out of range', 'jaccard', { input: seg4, target: [[[0, 1], [255, 0]]], mode: 'multiclass' }, 'INDEX_OUT_OF_RANGE', /^target: class index 255 at flat position 2 is out of range \[0, 2\)/],
    ['dice binary target shape', 'dice', { input: seg4, target: [[[1, 0], [0, 1]]], mode: 'binary' }, 'SHAPE_MISMATCH', /^target: mode "binary" takes the input's shape \[1,2,2,2\], got \[1,2,2\]/],
    ['dice multilabel target shape', 'tversky', { input: seg4, target: [[[1, 0], [0, 1]]], mode: 'multilabel' }, 'SHAPE_MISMATCH', /^target: expected shape \[1,2,2,2\] \(mode "multilabel"/],
    ['dice multilabel target outside [0, 1]', 'dice', { input: seg4, target: [[[[1, 0], [0, 1]], [[2, 0], [0, 1]]]], mode: 'multilabel' }, 'DOMAIN_ERROR', /^target: elements must lie in \[0, 1\], got 2 at flat position 4/],
    // smp views the input as (N, C, -1): PyTorch raises for N = 0, and for C = 0 but in binary mode's (N, 1, -1)
    ['dice empty batch', 'dice', { input: typed('float32', [0, 1, 3]), target: typed('float32', [0, 1, 3]), mode: 'binary' }, 'SHAPE_MISMATCH', /^input: an empty batch \[0,1,3\] \(N = 0\) has no loss: segmentation_models_pytorch views/],
    ['jaccard empty batch', 'jaccard', { input: typed('float64', [0, 2, 4]), target: typed('int64', [0, 4]), mode: 'multiclass' }, 'SHAPE_MISMATCH', /^input: an empty batch \[0,2,4\] \(N = 0\)/],
    ['tversky no classes, multiclass', 'tversky', { input: typed('float32', [2, 0, 3]), target: typed('int64', [2, 3], [5, 5, 5, 5, 5, 5]), mode: 'multiclass', ignore_index: 5 }, 'SHAPE_MISMATCH', /^input: no classes \[2,0,3\] \(C = 0\) in mode "multiclass"/],
    ['dice no classes, multilabel', 'dice', { input: typed('float32', [2, 0, 3]), target: typed('float32', [2, 0, 3]), mode: 'multilabel' }, 'SHAPE_MISMATCH', /^input: no classes \[2,0,3\] \(C = 0\) in mode "multilabel"/]
  ]
  for (const [label, name, body, code, message] of cases) {
    const r = await postLoss(app, name, body)
    t.equal(r.status, 400, `${label}: status`)
    t.equal(r.body.code, code, `${label}: code`)
    t.match(r.body.message, message, `${label}: message`)
  }
})

t.test('ignore_index values outside the classes are accepted where the reference skips them', async t => {
  const app = await build(t)
  const seg4 = [[[[1, -1], [0.5, 2]], [[0, 1], [1, 0]]]]
  const accepted: Array<[string, Record<string, unknown>]> = [
    ['lovasz_softmax', { input: seg4, target: [[[0, -100], [1, 0]]] }],
    ['lovasz_softmax', { input: seg4, target: [[[0, 255], [1, 0]]], ignore_index: 255 }],
    ['lovasz_hinge', { input: [[1, -1]], target: [[1, 255]], ignore_index: 255 }],
    ['dice', { input: seg4, target: [[[0, 255], [1, 0]]], mode: 'multiclass', ignore_index: 255 }],
    ['jaccard', { input: [seg4[0].slice(0, 1)], target: [[[1, -1], [0, 1]]], mode: 'binary', ignore_index: -1 }],
    ['tversky', { input: seg4, target: [[[[1, 0], [0, -100]], [[1, 1], [0, 0]]]], mode: 'multilabel', ignore_index: -100 }],
    // binary mode views the input as (N, 1, -1), which PyTorch does for C = 0 too
    ['dice', { input: typed('float32', [2, 0, 3]), target: typed('float32', [2, 0, 3]), mode: 'binary' }]
  ]
  for (const [name, body] of accepted) {
    const r = await postLoss(app, name, { ...body, grad: true })
    t.equal(r.status, 200, `${name} ${JSON.stringify(body.target)}: ${JSON.stringify(r.body)}`)
  }
})
