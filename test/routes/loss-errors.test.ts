import t from 'tap'
import { build, postLoss } from '../helpers/app'

// Each 4xx path of the contract (docs/losses.md, docs/errors.md): its status, code, and a message naming the argument at fault.
t.test('bad requests get a coded 4xx naming the argument, and change nothing', async t => {
  const app = await build(t, { bodyLimitMb: 0.01 })
  const ce = { input: [[1, 2], [1, 3], [1, 3]], target: [0, 1, 1] }
  const cases: Array<[string, string, unknown, number, string, RegExp]> = [
    ['missing field', 'cross_entropy', { input: ce.input }, 400, 'INVALID_REQUEST', /^target: required field is missing/],
    ['unknown field', 'cross_entropy', { ...ce, gamma: 2 }, 400, 'INVALID_REQUEST', /^gamma: unknown field/],
    ['a __proto__ key is an unknown field, never assigned', 'mse', JSON.parse('{"input": [1], "target": [1], "__proto__": {"polluted": 1}}'), 400, 'INVALID_REQUEST', /^__proto__: unknown field; __proto__, constructor and prototype are never field or tensor names$/],
    ['a constructor key too', 'mse', JSON.parse('{"input": [1], "target": [1], "constructor": 1}'), 400, 'INVALID_REQUEST', /^constructor: unknown field/],
    ['a nested constructor key too', 'mse', JSON.parse('{"input": {"dtype": "float32", "shape": [1], "data": [1], "constructor": {"prototype": {}}}, "target": [1]}'), 400, 'INVALID_REQUEST', /^input\.constructor: unknown field/],
    ['a prototype key in an option', 'cross_entropy', JSON.parse('{"input": [[1, 2]], "target": [0], "weight": [1, 1], "label_smoothing": {"prototype": 1}}'), 400, 'INVALID_REQUEST', /^label_smoothing\.prototype: unknown field/],
    ['bad reduction', 'mse', { input: [1], target: [1], reduction: 'batchmean' }, 400, 'INVALID_REQUEST', /^reduction: must be one of "none", "mean", "sum"/],
    ['bad option type', 'smooth_l1', { input: [1], target: [1], beta: 'big' }, 400, 'INVALID_REQUEST', /^beta: must be number/],
    ['option out of range', 'huber', { input: [1], target: [1], delta: 0 }, 400, 'INVALID_REQUEST', /^delta: must be > 0/],
    ['grad not boolean', 'mse', { input: [1], target: [1], grad: 'yes' }, 400, 'INVALID_REQUEST', /^grad: must be boolean/],
    ['tensor of the wrong JSON type', 'mse', { input: { a: 1 }, target: [1] }, 400, 'INVALID_TENSOR', /^input\.a: unknown field; a typed tensor has dtype, shape and data/],
    ['tensor of a string', 'mse', { input: 'foo', target: [1] }, 400, 'INVALID_TENSOR', /^input: expected a number or "NaN", "Infinity", "-Infinity", got "foo"/],
    ['ragged', 'mse', { input: [[1, 2], [3]], target: [1] }, 400, 'INVALID_TENSOR', /^input\[1\]: ragged nested arrays/],
    ['data/shape mismatch', 'mse', { input: { dtype: 'float32', shape: [3], data: [1, 2] }, target: [1] }, 400, 'INVALID_TENSOR', /^input\.data: shape \[3\] needs 3 elements, got 2/],
    ['bad base64', 'mse', { input: { dtype: 'float32', shape: [1], data: 'AAA' }, target: [1] }, 400, 'INVALID_TENSOR', /^input\.data: base64/],
    // of the right length, decoded to the right byte count by Node, which skips what is not base64
    ['base64 with junk where its padding belongs', 'l1', { input: { dtype: 'float32', shape: [1], data: '!AACAPw=' }, target: [0], reduction: 'none' }, 400, 'INVALID_TENSOR', /^input\.data: base64 must hold 1 float32 elements .*got invalid base64/],
    ['base64 with a space in it', 'l1', { input: { dtype: 'float32', shape: [1], data: 'AACA Pw=' }, target: [0], reduction: 'none' }, 400, 'INVALID_TENSOR', /^input\.data: base64 .*got invalid base64/],
    ['base64 with an inner =', 'l1', { input: { dtype: 'float32', shape: [1], data: 'AACA=w==' }, target: [0] }, 400, 'INVALID_TENSOR', /^input\.data: base64 .*got invalid base64/],
    ['base64 with a byte too many where its padding belongs', 'l1', { input: [1], target: { dtype: 'float64', shape: [1], data: 'AAAAAAAA+D8A' } }, 400, 'INVALID_TENSOR', /^target\.data: base64 must hold 1 float64 elements .*got invalid base64/],
    ['float class indices', 'cross_entropy', { input: ce.input, target: { dtype: 'float32', shape: [3], data: [0, 1, 1] } }, 400, 'SHAPE_MISMATCH', /^target: expected shape \[3,2\] \(class probabilities take the input's shape\), got \[3\]/],
    ['non-integer nested indices', 'nll', { input: ce.input, target: [0, 1.5, 1] }, 400, 'INVALID_DTYPE', /^target: class indices must be integers, got 1\.5/],
    ['int input', 'mse', { input: { dtype: 'int64', shape: [1], data: [1] }, target: [1] }, 400, 'INVALID_DTYPE', /^input: expected float32 or float64 elements, got int64/],
    ['shapes that do not broadcast', 'mse', { input: [1, 2], target: [1, 2, 3] }, 400, 'SHAPE_MISMATCH', /^input, target: shapes input \[2\], target \[3\] do not broadcast/],
    // F.soft_margin_loss: "output with shape [2] doesn't match the broadcast shape [3, 2]"
    ['a target that would enlarge the input (soft_margin)', 'soft_margin', { input: [0.5, -1], target: [[1, -1], [-1, 1], [1, 1]] }, 400, 'SHAPE_MISMATCH', /^target: shape \[3,2\] must broadcast to \[2\]/],
    ['index target shape', 'cross_entropy', { input: ce.input, target: [0, 1] }, 400, 'SHAPE_MISMATCH', /^target: class indices for input \[3,2\] must have shape \[3\]/],
    ['weight shape', 'cross_entropy', { ...ce, weight: [1, 2, 3] }, 400, 'SHAPE_MISMATCH', /^weight: expected one weight per class, shape \[2\], got \[3\]/],
    ['class index out of range', 'cross_entropy', { input: ce.input, target: [0, 2, 1] }, 400, 'INDEX_OUT_OF_RANGE', /^target: class index 2 at flat position 1 is out of range \[0, 2\)/],
    ['negative class index', 'nll', { input: ce.input, target: [0, -1, 1] }, 400, 'INDEX_OUT_OF_RANGE', /^target: class index -1/],
    // PyTorch checks every entry of a multilabel target, those after a row's -1 (not read) too
    ['multilabel index out of range after the -1', 'multilabel_margin', { input: [[0.1, 0.2, 0.4]], target: [[2, -1, 7]] }, 400, 'INDEX_OUT_OF_RANGE', /^target: entry 7 at flat position 2 is out of range \[-1, 3\)/],
    ['multilabel padding other than -1', 'multilabel_margin', { input: [[0.1, 0.2, 0.4], [0.3, 0.2, 0.1]], target: [[0, 1, 2], [-2, 0, 1]] }, 400, 'INDEX_OUT_OF_RANGE', /^target: entry -2 at flat position 3 is out of range \[-1, 3\)/],
    ['bce input outside [0, 1]', 'bce', { input: [0.5, 1.2], target: [1, 0] }, 400, 'DOMAIN_ERROR', /^input: elements must lie in \[0, 1\], got 1\.2 at flat position 1/],
    ['bce target shape', 'bce', { input: [0.5, 0.2], target: [1, 0, 1] }, 400, 'SHAPE_MISMATCH', /^target: expected the shape of input \[2\], got \[3\]/],
    ['grad_output without grad', 'mse', { input: [1, 2], target: [0, 0], reduction: 'none', grad_output: [1, 1] }, 400, 'INVALID_OPTION', /^grad_output: only meaningful with grad: true/],
    ['grad_output shape', 'mse', { input: [1, 2], target: [0, 0], reduction: 'none', grad: true, grad_output: [1, 1, 1] }, 400, 'SHAPE_MISMATCH', /^grad_output: must have the loss's shape \[2\]/],
    ['ignore_index with probabilities', 'cross_entropy', { input: [[1, 2]], target: [[0.5, 0.5]], ignore_index: 1 }, 400, 'INVALID_OPTION', /^ignore_index: not supported with class-probability targets/],
    ['unknown loss', 'focal_loss_v9', { input: [1] }, 404, 'UNKNOWN_LOSS', /^loss 'focal_loss_v9' is not served; known losses: .*cross_entropy/]
  ]
  for (const [label, name, body, status, code, message] of cases) {
    const r = await postLoss(app, name, body)
    t.equal(r.status, status, `${label}: status`)
    t.equal(r.body.code, code, `${label}: code`)
    t.equal(r.body.statusCode, status, `${label}: statusCode in body`)
    t.match(r.body.message, message, `${label}: message`)
  }
  // after all that, the service still answers correctly
  const ok = await postLoss(app, 'cross_entropy', { ...ce, reduction: 'sum' })
  t.equal(ok.status, 200)
  t.ok(Math.abs(ok.body.loss - 1.5671) < 1e-4)
})

t.test('base64 in the URL-safe alphabet reads as the standard one', async t => {
  const app = await build(t)
  // float64 1.5 is AAAAAAAA+D8=, float32 3.4028234663852886e38 (FLT_MAX) is //9/fw==
  const r = await postLoss(app, 'l1', { input: { dtype: 'float64', shape: [1], data: 'AAAAAAAA-D8=' }, target: [0.5], reduction: 'sum' })
  // the reply takes the first tensor's form: base64, in the standard alphabet
  t.equal(r.status, 200)
  t.same(r.body.loss, { dtype: 'float64', shape: [], data: 'AAAAAAAA8D8=' }, '|1.5 - 0.5| = 1')
  t.equal(Buffer.from(r.body.loss.data, 'base64').readDoubleLE(0), 1)
  const big = await postLoss(app, 'l1', { input: { dtype: 'float32', shape: [1], data: '__9_fw==' }, target: [0], reduction: 'sum' })
  t.equal(big.status, 200)
  t.same(big.body.loss, { dtype: 'float32', shape: [], data: '//9/fw==' }, '|FLT_MAX - 0|')
})

t.test('malformed JSON, wrong content type, body too large, unknown route', async t => {
  const app = await build(t, { bodyLimitMb: 0.01 })
  const badJson = await app.inject({ method: 'POST', url: '/loss/mse', payload: '{"input": [1,', headers: { 'content-type': 'application/json' } })
  t.equal(badJson.statusCode, 400)
  t.equal(badJson.json().code, 'INVALID_JSON')
  const text = await app.inject({ method: 'POST', url: '/loss/mse', payload: 'input=1', headers: { 'content-type': 'text/plain' } })
  t.equal(text.statusCode, 415)
  t.equal(text.json().code, 'UNSUPPORTED_MEDIA_TYPE')
  t.match(text.json().message, /^content-type: expected application\/json, got "text\/plain"/)
  const big = await app.inject({ method: 'POST', url: '/loss/mse', payload: { input: new Array(5000).fill(1.25), target: [1] } })
  t.equal(big.statusCode, 413)
  t.equal(big.json().code, 'PAYLOAD_TOO_LARGE')
  const notJsonObject = await app.inject({ method: 'POST', url: '/loss/mse', payload: '[1,2]', headers: { 'content-type': 'application/json' } })
  t.equal(notJsonObject.statusCode, 400)
  t.equal(notJsonObject.json().code, 'INVALID_REQUEST')
  const route = await app.inject({ method: 'GET', url: '/nowhere' })
  t.equal(route.statusCode, 404)
  t.equal(route.json().code, 'NOT_FOUND')
})

t.test('a request whose working memory would be too large is refused, not attempted', async t => {
  const app = await build(t)
  const c = 9000
  const r = await postLoss(app, 'multilabel_margin', {
    input: { dtype: 'float32', shape: [1, c], data: Buffer.alloc(4 * c).toString('base64') },
    target: { dtype: 'int64', shape: [1, c], data: Buffer.from(BigInt64Array.from({ length: c }, () => -1n).buffer).toString('base64') }
  })
  t.equal(r.status, 400)
  t.equal(r.body.code, 'TOO_LARGE')
  t.match(r.body.message, /^N\*C\*C, the pairs of classes of input \[1,9000\]: needs 81000000 elements, more than the 4194304 one request may use \(MAX_ELEMENTS\)/)
})
