/**
 * Mutations of a loss's catalog example, as fast-check arbitraries: each gives a request body
 * and what the contract requires of the answer (a 200, a 4xx, or either; never a 5xx).
 */
import fc from 'fast-check'
import { lossRequestSchema } from '../../schemas/loss-request'
import { type Flat, type Form } from '../helpers/tensors'
import { type Example, base64, bodyIn, inForm, isIndex, widen } from './forms'
import { type Expect } from './oracle'
import { Raw, bigInt, deepArray, deepObject, serialize } from './wire'

/** One mutated request. */
export interface Mutant {
  /** The mutation family and what it changed, for failure messages. */
  what: string
  body: unknown
  expect: Expect
  /** No tensor value was changed: a 200 must be finite where the example's answer is. */
  sameValues: boolean
  /** Only the tensors' forms changed: a 200 must give the example's values. */
  sameAnswer?: boolean
}

const FORMS: Form[] = ['nested', 'flat', 'base64']
const TYPED: Form[] = ['flat', 'base64']

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1)

/** A non-negative integer as a JSON number can hold it (what a shape dim must be). */
const isDim = (d: unknown): boolean => typeof d === 'number' && Number.isInteger(d) && d >= 0

/** Every family of mutations, by name. */
export const FAMILIES = {
  forms, common, options, drop, extra, wrongType, dims, empty, values, dtype, badBase64, nesting, mixed, gradOutput, broadcast
} satisfies Record<string, (ex: Example) => fc.Arbitrary<Mutant>>

export type Family = keyof typeof FAMILIES

const tensorNames = (ex: Example): string[] => Object.keys(ex.tensors)
const declOf = (ex: Example, name: string): { kind: string, integers?: boolean } | undefined => ex.def.args.find(a => a.name === name)

/** Each tensor in a form of its own (mixed forms), float64/int32 in typed forms now and then. */
function formsArb (ex: Example): fc.Arbitrary<Record<string, { form: Form, wide: boolean }>> {
  const rec: Record<string, fc.Arbitrary<{ form: Form, wide: boolean }>> = {}
  for (const k of tensorNames(ex)) rec[k] = fc.record({ form: fc.constantFrom(...FORMS), wide: fc.boolean() })
  return fc.record(rec)
}

/** The example in the given forms; typed floats widened to float64 and typed indices narrowed to int32 when `wide` says so. */
function render (ex: Example, pick: Record<string, { form: Form, wide: boolean }>): Record<string, unknown> {
  return bodyIn(ex, k => pick[k].form, (k, t) => pick[k].form === 'nested' ? t : widen(t, isIndex(t) ? !pick[k].wide : pick[k].wide))
}

/** The body with one tensor replaced by `value`. */
function withTensor (ex: Example, pick: Record<string, { form: Form, wide: boolean }>, name: string, value: unknown): Record<string, unknown> {
  return { ...render(ex, pick), [name]: value }
}

function forms (ex: Example): fc.Arbitrary<Mutant> {
  return formsArb(ex).map(pick => ({
    what: `forms ${JSON.stringify(pick)}`,
    body: { ...render(ex, pick), grad: true },
    expect: 'ok',
    sameValues: true,
    sameAnswer: true
  }))
}

/** reduction and grad, valid or not. */
function common (ex: Example): fc.Arbitrary<Mutant> {
  const reductions = [...ex.def.reductions, 'none', 'mean', 'sum', 'batchmean', 'max', 'MEAN', '']
  return fc.record({ pick: formsArb(ex), reduction: fc.constantFrom(...reductions), grad: fc.boolean() }).map(({ pick, reduction, grad }) => ({
    what: `reduction ${JSON.stringify(reduction)}, grad ${String(grad)}`,
    body: { ...render(ex, pick), reduction, grad },
    expect: (ex.def.reductions as readonly string[]).includes(reduction) ? 'either' : 'reject',
    sameValues: true
  }))
}

const OPTION_VALUES: unknown[] = [
  true, false, 0, -0, -1, 1, 2, 0.5, 1.5, 1e-300, 1e300, -1e300, 2 ** 31, 2 ** 53,
  bigInt(2n ** 63n), bigInt(-(2n ** 63n) - 1n), bigInt(2n ** 64n), 'NaN', 'Infinity', 'auto', 'all', 'cosine', 'multiclass', 'multilabel'
]

/** JSON types an option's schema admits ('integer' for an integer schema), and its enum if it has one. */
function admits (schema: { type?: string, enum?: unknown[], anyOf?: unknown[] }): { types: Set<string>, enums: unknown[] } {
  const members = (schema.anyOf ?? [schema]) as Array<{ type?: string, enum?: unknown[] }>
  return { types: new Set(members.map(m => m.type ?? 'any')), enums: members.flatMap(m => m.enum ?? []) }
}

/** One option set to an edge value: any value of its JSON type may pass or not; another type is a 4xx. */
function options (ex: Example): fc.Arbitrary<Mutant> {
  const names = Object.keys(ex.def.options)
  if (names.length === 0) return common(ex)
  const values = fc.constantFrom(...OPTION_VALUES)
  return fc.record({ pick: formsArb(ex), name: fc.constantFrom(...names), value: values, reduction: fc.constantFrom(...ex.def.reductions), grad: fc.boolean() })
    .map(({ pick, name, value, reduction, grad }) => {
      const { types, enums } = admits(ex.def.options[name] as { type?: string })
      const n = value instanceof Raw ? Number(value.text) : value
      const type = typeof n === 'number' ? (Number.isInteger(n) ? 'integer' : 'number') : typeof n
      const typeOk = types.has(type) || (type === 'integer' && types.has('number'))
      const enumOk = typeof n !== 'string' || enums.includes(n)
      // an integer option beyond 2^53 cannot have come through JSON exactly
      const exact = !(types.has('integer') && !types.has('number') && typeof n === 'number' && !Number.isSafeInteger(n))
      const shown = value instanceof Raw ? value.text : JSON.stringify(value)
      return { what: `${name} = ${shown}`, body: { ...render(ex, pick), reduction, grad, [name]: value }, expect: typeOk && enumOk && exact ? 'either' : 'reject', sameValues: false }
    })
}

/** One field left out: a 4xx exactly when the field is required. */
function drop (ex: Example): fc.Arbitrary<Mutant> {
  const required = new Set(lossRequestSchema(ex.def).required ?? [])
  const keys = [...tensorNames(ex), ...Object.keys(ex.rest)]
  return fc.record({ pick: formsArb(ex), key: fc.constantFrom(...keys) }).map(({ pick, key }) => {
    const body = render(ex, pick)
    delete body[key]
    return { what: `without ${key}`, body, expect: required.has(key) ? 'reject' : 'ok', sameValues: true }
  })
}

/** A field the loss does not have (another loss's, a near miss, prototype keys): 400. */
function extra (ex: Example): fc.Arbitrary<Mutant> {
  const known = new Set(Object.keys(lossRequestSchema(ex.def).properties))
  const names = ['__proto__', 'constructor', 'prototype', 'Input', 'input ', 'inputs', 'weights', 'pos_weight', 'var', 'margin', 'mode', 'dtype', 'shape', 'data', 'gradient', '', '😀']
    .filter(k => !known.has(k))
  const values = fc.constantFrom<unknown>(null, 1, 'x', true, [], {}, [1, 2], { dtype: 'float32', shape: [1], data: [1] })
  return fc.record({ pick: formsArb(ex), key: fc.constantFrom(...names), value: values }).map(({ pick, key, value }) => {
    const body = render(ex, pick)
    Object.defineProperty(body, key, { value, enumerable: true, configurable: true, writable: true })
    return { what: `extra field ${JSON.stringify(key)}`, body, expect: 'reject', sameValues: true }
  })
}

/** A field given a value of another JSON type. */
function wrongType (ex: Example): fc.Arbitrary<Mutant> {
  const tensors = new Set(tensorNames(ex))
  const keys = [...tensors, ...Object.keys(ex.rest)]
  const values: unknown[] = [null, true, 'x', '', 'NaN', 0, -1, 1.5, 1e300, [], [null], [true], [{}], [[1], [1, 2]], [[1], 2], {}, { a: 1 }, { dtype: 'float32' }, { shape: [1], data: [1] }]
  return fc.record({ pick: formsArb(ex), key: fc.constantFrom(...keys), value: fc.constantFrom(...values) }).map(({ pick, key, value }) => {
    const body = { ...render(ex, pick), [key]: value }
    return { what: `${key} = ${JSON.stringify(value)}`, body, expect: wrongTypeExpect(key, tensors.has(key), value), sameValues: false }
  })
}

function wrongTypeExpect (key: string, tensor: boolean, value: unknown): Expect {
  // a number, "NaN" or [] is a tensor (0-d or empty); no option is null, an array or an object
  if (tensor) return typeof value === 'number' || value === 'NaN' || (Array.isArray(value) && value.length === 0) ? 'either' : 'reject'
  if (value === null || typeof value === 'object') return 'reject'
  if (key === 'grad') return typeof value === 'boolean' ? 'either' : 'reject'
  if (key === 'reduction') return 'reject'
  return 'either'
}

const DIMS: unknown[] = [0, 1, 3, -1, -0.5, 1.5, 1e9, 2 ** 31, 2 ** 32, 2 ** 53, bigInt(2n ** 53n + 1n), bigInt(2n ** 64n), 1e300, '2', null, true, [2]]

/** One dim of a typed tensor's shape changed (or one added), its data kept. */
function dims (ex: Example): fc.Arbitrary<Mutant> {
  return fc.record({
    pick: formsArb(ex),
    name: fc.constantFrom(...tensorNames(ex)),
    form: fc.constantFrom(...TYPED),
    at: fc.nat(8),
    insert: fc.boolean(),
    dim: fc.constantFrom(...DIMS),
    deep: fc.nat(7).map(n => n === 0)
  }).map(({ pick, name, form, at, insert, dim, deep }) => {
    const t = ex.tensors[name]
    const typed = inForm(t, form) as { shape: unknown[] }
    const shape: unknown[] = [...t.shape]
    const i = at % (shape.length + 1)
    if (insert || i === shape.length) shape.splice(i, 0, dim)
    else shape[i] = dim
    // rank 9: one more than the contract allows
    if (deep) while (shape.length < 9) shape.unshift(1)
    const body = withTensor(ex, pick, name, { ...typed, shape })
    const valid = shape.every(isDim) && shape.length <= 8 && sizeOf(shape as number[]) === sizeOf(t.shape)
    return { what: `${name}.shape = ${JSON.stringify(shape, (_k, v: unknown) => v instanceof Raw ? v.text : v)} (${form})`, body, expect: valid ? 'either' : 'reject', sameValues: false }
  })
}

const HUGE = [0, 1, 2, 1e8, 1e9, 2 ** 31, 2 ** 53, 1e300]

/** Every tensor empty: shapes with a zero dim beside huge ones, no data. */
function empty (ex: Example): fc.Arbitrary<Mutant> {
  const shapeArb = fc.array(fc.constantFrom(...HUGE), { minLength: 1, maxLength: 4 }).map(s => s.includes(0) ? s : [0, ...s.slice(1)])
  const rec: Record<string, fc.Arbitrary<{ shape: number[], form: Form, keep: boolean }>> = {}
  for (const k of tensorNames(ex)) rec[k] = fc.record({ shape: shapeArb, form: fc.constantFrom(...FORMS), keep: fc.boolean() })
  return fc.record({ each: fc.record(rec), reduction: fc.constantFrom(...ex.def.reductions), grad: fc.boolean() }).map(({ each, reduction, grad }) => {
    const body: Record<string, unknown> = { ...ex.rest, reduction, grad }
    const told: string[] = []
    for (const [k, t] of Object.entries(ex.tensors)) {
      const e = each[k]
      // keep: the example's shape with its first dim 0 (an empty batch)
      const shape = e.keep && t.shape.length > 0 ? [0, ...t.shape.slice(1)] : e.shape
      body[k] = inForm({ dtype: t.dtype, shape, data: [] }, e.form === 'nested' && !e.keep ? 'flat' : e.form)
      told.push(`${k} ${JSON.stringify(shape)}`)
    }
    return { what: `empty: ${told.join(', ')}`, body, expect: 'either', sameValues: false }
  })
}

const FLOAT_VALUES: Array<[unknown, Expect]> = [
  ['NaN', 'either'], ['Infinity', 'either'], ['-Infinity', 'either'], [1e300, 'either'], [-1e300, 'either'], [5e-324, 'either'], [-0, 'either'], [3.4e38, 'either'],
  ['nan', 'reject'], ['inf', 'reject'], ['+Infinity', 'reject'], ['1', 'reject'], ['', 'reject'], [null, 'reject'], [true, 'reject'], [[], 'reject'], [{}, 'reject'], [[1], 'reject']
]

/**
 * Index values: an int64 beyond 2^53 cannot be a class index or a length anywhere, so it must
 * not be read as another (wrapped or rounded) value that is one. A negative one may be padding.
 */
const INDEX_VALUES: Array<[unknown, Expect]> = [
  [-1, 'either'], [0, 'either'], [1.5, 'reject'], [2 ** 31, 'either'], [2 ** 32, 'either'], [-(2 ** 31) - 1, 'either'],
  [bigInt(2n ** 53n + 1n), 'reject'], [bigInt(2n ** 63n - 1n), 'reject'], [bigInt(2n ** 63n), 'reject'], [bigInt(2n ** 64n), 'reject'], [bigInt(2n ** 64n + 1n), 'reject'],
  [bigInt(-(2n ** 63n)), 'either'], [bigInt(-(2n ** 64n)), 'reject'], [1e300, 'reject'], ['NaN', 'reject'], ['Infinity', 'reject'], [null, 'reject']
]

/** One element of one tensor (typed flat, or nested) replaced. */
function values (ex: Example): fc.Arbitrary<Mutant> {
  const withData = tensorNames(ex).filter(k => sizeOf(ex.tensors[k].shape) > 0)
  return fc.record({ pick: formsArb(ex), name: fc.constantFrom(...withData), at: fc.nat(1000), nested: fc.boolean(), choice: fc.nat(100), int32: fc.boolean() })
    .map(({ pick, name, at, nested, choice, int32 }) => {
      const t = ex.tensors[name]
      const index = isIndex(t)
      const table = index ? INDEX_VALUES : FLOAT_VALUES
      const [value, expected] = table[choice % table.length]
      const i = at % t.data.length
      let expect = expected
      if (index && int32 && !nested) {
        // int32 holds less: anything beyond it (or not a number) is a 4xx
        const n = value instanceof Raw ? Number(value.text) : value
        if (typeof n !== 'number' || !Number.isInteger(n) || n < -(2 ** 31) || n >= 2 ** 31) expect = 'reject'
      }
      let tensor: unknown
      if (nested) {
        const flat = inForm({ ...t, data: t.data.map((v, j) => (j === i ? 0 : v)) }, 'nested')
        tensor = replaceNested(flat, t.shape, i, value)
        // an array in place of the only element is a tensor of higher rank, not a ragged one
        if (t.data.length === 1 && Array.isArray(value) && value.length > 0) expect = 'either'
      } else {
        tensor = { dtype: index && int32 ? 'int32' : t.dtype, shape: t.shape, data: t.data.map((v, j) => (j === i ? value : v)) }
      }
      const shown = value instanceof Raw ? value.text : JSON.stringify(value)
      return { what: `${name} element ${i} = ${shown} (${nested ? 'nested' : 'flat'})`, body: withTensor(ex, pick, name, tensor), expect, sameValues: false }
    })
}

function replaceNested (nested: unknown, shape: number[], flatIndex: number, value: unknown): unknown {
  if (shape.length === 0) return value
  let node = nested as unknown[]
  let rest = flatIndex
  for (let d = 0; d < shape.length - 1; d++) {
    const stride = sizeOf(shape.slice(d + 1))
    node = node[Math.floor(rest / stride)] as unknown[]
    rest %= stride
  }
  node[rest] = value
  return nested
}

const DTYPES: unknown[] = ['float32', 'float64', 'int32', 'int64', 'float16', 'bfloat16', 'bool', 'uint8', 'FLOAT32', '', null, 4, ['float32']]

/** A typed tensor's dtype changed, its data kept. */
function dtype (ex: Example): fc.Arbitrary<Mutant> {
  return fc.record({ pick: formsArb(ex), name: fc.constantFrom(...tensorNames(ex)), form: fc.constantFrom(...TYPED), dtype: fc.constantFrom(...DTYPES) })
    .map(({ pick, name, form, dtype }) => {
      const t = ex.tensors[name]
      const typed = inForm(t, form) as Record<string, unknown>
      const kind = declOf(ex, name)?.kind ?? 'float'
      let expect: Expect = 'either'
      const valid = ['float32', 'float64', 'int32', 'int64'].includes(dtype as string)
      const toInt = dtype === 'int32' || dtype === 'int64'
      const width = (d: unknown): number => (d === 'float64' || d === 'int64' ? 8 : 4)
      if (!valid) expect = 'reject'
      // labels and counts take integers, as PyTorch does (ArgDecl.integers)
      else if (kind === 'float' && toInt && name !== 'grad_output' && declOf(ex, name)?.integers !== true) expect = 'reject'
      else if (kind === 'index' && !toInt) expect = 'reject'
      else if (form === 'base64' && width(dtype) !== width(t.dtype) && sizeOf(t.shape) > 0) expect = 'reject'
      else if (toInt && t.data.some(v => typeof v !== 'number' || !Number.isInteger(v))) expect = 'reject'
      return { what: `${name}.dtype = ${JSON.stringify(dtype)} (${form})`, body: withTensor(ex, pick, name, { ...typed, dtype }), expect, sameValues: false }
    })
}

/** Base64 data corrupted: cut, lengthened, or with characters outside the alphabet. */
function badBase64 (ex: Example): fc.Arbitrary<Mutant> {
  const withData = tensorNames(ex).filter(k => sizeOf(ex.tensors[k].shape) > 0)
  const edits: Array<[string, Expect, (s: string, i: number) => string]> = [
    ['cut 1', 'reject', s => s.slice(0, -1)],
    ['cut 4', 'reject', s => s.slice(0, -4)],
    ['add "A"', 'reject', s => s + 'A'],
    ['add "AAAA"', 'reject', s => s + 'AAAA'],
    ['a "!"', 'reject', (s, i) => s.slice(0, i) + '!' + s.slice(i + 1)],
    ['a space', 'reject', (s, i) => s.slice(0, i) + ' ' + s.slice(i + 1)],
    ['a newline', 'reject', (s, i) => s.slice(0, i) + '\n' + s.slice(i + 1)],
    ['a "=" inside', 'reject', (s, i) => s.slice(0, i) + '=' + s.slice(i + 1)],
    ['padding dropped', 'reject', s => s.replace(/=+$/, '') === s ? s.slice(0, -1) : s.replace(/=+$/, '')],
    ['empty', 'reject', () => ''],
    ['url-safe "-"', 'either', (s, i) => s.slice(0, i) + '-' + s.slice(i + 1)],
    ['non-ASCII', 'reject', (s, i) => s.slice(0, i) + 'é' + s.slice(i + 1)]
  ]
  return fc.record({ pick: formsArb(ex), name: fc.constantFrom(...withData), edit: fc.nat(edits.length - 1), at: fc.nat(1000) }).map(({ pick, name, edit, at }) => {
    const t = ex.tensors[name]
    const typed = inForm(t, 'base64') as { data: string }
    const unpadded = typed.data.replace(/=+$/, '').length
    const [label, expect, f] = edits[edit]
    const data = f(typed.data, at % unpadded)
    return { what: `${name}.data base64 ${label}`, body: withTensor(ex, pick, name, { ...typed, data }), expect, sameValues: false }
  })
}

/** Tensors wrapped in extra arrays, nested beyond any rank, deep JSON in every kind of field. */
function nesting (ex: Example): fc.Arbitrary<Mutant> {
  const names = tensorNames(ex)
  const option = Object.keys(ex.rest)[0] ?? 'reduction'
  return fc.record({ pick: formsArb(ex), name: fc.constantFrom(...names), depth: fc.constantFrom(1, 2, 4, 8, 9, 100, 10000, 100000), where: fc.nat(5) })
    .map(({ pick, name, depth, where }) => {
      const body = render(ex, pick)
      const tensor = body[name]
      const t = ex.tensors[name]
      const nested = pick[name].form === 'nested'
      let what: string
      let expect: Expect = 'reject'
      switch (where) {
        case 0: // the tensor inside `depth` more arrays
          body[name] = new Raw('['.repeat(depth) + serialize(tensor) + ']'.repeat(depth), `${name} in ${depth} arrays`)
          what = `${name} (${pick[name].form}) wrapped in ${depth} arrays`
          if (nested && t.shape.length + depth <= 8) expect = 'either'
          break
        case 1: // the tensor replaced by a deep nest of one number
          body[name] = deepArray(depth)
          what = `${name} = ${depth} nested arrays around 1`
          if (depth <= 8) expect = 'either'
          break
        case 2: // typed data holding arrays (one level more: a flat array would be valid data)
          body[name] = { dtype: t.dtype, shape: t.shape, data: deepArray(depth + 1) }
          what = `${name}.data = ${depth + 1} nested arrays`
          break
        case 3:
          body[name] = { dtype: t.dtype, shape: deepArray(depth, '0'), data: [] }
          what = `${name}.shape = ${depth} nested arrays`
          break
        case 4:
          body[option] = deepObject(depth)
          what = `${option} = ${depth} nested objects`
          break
        default:
          body.deep = deepArray(depth)
          what = `unknown field holding ${depth} nested arrays`
      }
      return { what, body, expect, sameValues: false }
    })
}

/** One tensor mixing forms inside itself: typed objects in nested arrays, arrays in typed data. */
function mixed (ex: Example): fc.Arbitrary<Mutant> {
  return fc.record({ pick: formsArb(ex), name: fc.constantFrom(...tensorNames(ex)), how: fc.nat(3) }).map(({ pick, name, how }) => {
    const t = ex.tensors[name]
    const typed = inForm(t, 'flat') as Flat
    const values: unknown[] = [
      [typed],
      { ...typed, data: inForm(t, 'nested') },
      { ...typed, data: [inForm(t, 'base64')] },
      { ...typed, extra: 1 }
    ]
    // data given nested instead of flat is still the right count only when it is flat already
    const expect: Expect = how === 1 && t.shape.length === 1 ? 'either' : 'reject'
    return { what: `${name}: mixed form #${how}`, body: withTensor(ex, pick, name, values[how]), expect, sameValues: false }
  })
}

/** grad_output of the right shape, the wrong shape, or with non-finite values. */
function gradOutput (ex: Example): fc.Arbitrary<Mutant> {
  const shapes = fc.constantFrom<number[]>([], [0], [1], [2], [3], [2, 2], [0, 1e9], [1e300, 0])
  return fc.record({ pick: formsArb(ex), shape: shapes, value: fc.constantFrom<unknown>(1, 0, 'NaN', 'Infinity', 1e300), grad: fc.boolean(), form: fc.constantFrom(...FORMS) })
    .map(({ pick, shape, value, grad, form }) => {
      const n = sizeOf(shape)
      const t: Flat = { dtype: 'float32', shape, data: new Array(n).fill(value) }
      // nested arrays cannot write [1e300,0]: such shapes go typed
      const small = shape.every(d => d <= 16)
      const body = { ...render(ex, pick), reduction: ex.def.reductions.includes('none') ? 'none' : 'mean', grad, grad_output: inForm(t, small ? form : 'flat') }
      return { what: `grad_output ${JSON.stringify(shape)} of ${JSON.stringify(value)}, grad ${String(grad)}`, body, expect: grad && small ? 'either' : 'reject', sameValues: false }
    })
}

/** Float tensors reshaped to broadcast against each other: [k,1] with [1,k]. */
function broadcast (ex: Example): fc.Arbitrary<Mutant> {
  const floats = tensorNames(ex).filter(k => !isIndex(ex.tensors[k]))
  const sizes = fc.constantFrom(2, 16, 256, 1024)
  return fc.record({ k: sizes, swap: fc.boolean(), grad: fc.boolean(), reduction: fc.constantFrom(...ex.def.reductions) }).map(({ k, swap, grad, reduction }) => {
    const body: Record<string, unknown> = { ...ex.rest, grad, reduction }
    for (const [name, t] of Object.entries(ex.tensors)) body[name] = inForm(t, 'base64')
    floats.forEach((name, i) => {
      const shape = (i % 2 === 0) !== swap ? [k, 1] : [1, k]
      body[name] = { dtype: 'float32', shape, data: base64(new Float32Array(k).fill(0.5)) }
    })
    return { what: `float tensors [${k},1] against [1,${k}]`, body, expect: 'either', sameValues: false }
  })
}
