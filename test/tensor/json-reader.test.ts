import t, { type Test } from 'tap'
import fc from 'fast-check'
import { readBody, readJson, DecodedTensor } from '../../src/tensor/json-reader'
import { decodeTensor, MAX_RANK } from '../../src/tensor/decode'
import { MAX_JSON_DEPTH } from '../../src/tensor/json-reader'
import { LosshubError } from '../../src/errors'
import { Entries, Raw, difference, looseJson, midpointText, numberTexts } from './json-forms'

const NONE = new Set<string>()
const SEED = Number(process.env.JSON_SEED ?? 20250)
const RUNS = Number(process.env.JSON_RUNS ?? 300)
t.comment(`fast-check seed ${SEED} (JSON_SEED, JSON_RUNS to replay or extend)`)

/** What readBody does with a text: its value, or its error's code and message. */
function outcome (text: string, keys: ReadonlySet<string> = NONE): { value?: Record<string, unknown>, code?: string, message?: string } {
  try {
    return { value: readBody(Buffer.from(text), keys) }
  } catch (err) {
    if (!(err instanceof LosshubError)) throw err
    return { code: err.code, message: err.message }
  }
}

/** The tensor as decodeTensor gives it from JSON.parse, or its error. */
function reference (key: string, json: unknown): { tensor?: { dtype: unknown, shape: number[], form: string, data: ArrayBufferView }, code?: string, message?: string } {
  try {
    return { tensor: decodeTensor(key, json) }
  } catch (err) {
    if (!(err instanceof LosshubError)) throw err
    return { code: err.code, message: err.message }
  }
}

/** JSON.parse of the text as it travels: UTF-8 bytes (a lone surrogate becomes U+FFFD on the way). */
const parseSent = (text: string): Record<string, unknown> => JSON.parse(Buffer.from(text).toString()) as Record<string, unknown>

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)

/** Same dtype, shape, form, array type and bytes (NaN payloads included). */
function tensorDifference (got: unknown, want: { dtype: unknown, shape: number[], form: string, data: ArrayBufferView }): string | undefined {
  if (!(got instanceof DecodedTensor)) return `not a DecodedTensor: ${String(got)}`
  if (got.dtype !== want.dtype || got.form !== want.form) return `dtype/form ${String(got.dtype)}/${got.form} vs ${String(want.dtype)}/${want.form}`
  if (JSON.stringify(got.shape) !== JSON.stringify(want.shape)) return `shape ${JSON.stringify(got.shape)} vs ${JSON.stringify(want.shape)}`
  if (got.data.constructor !== want.data.constructor) return `data ${got.data.constructor.name} vs ${want.data.constructor.name}`
  if (!bytesOf(got.data).equals(bytesOf(want.data))) return 'data bytes differ'
  return undefined
}

// ---- numbers ----------------------------------------------------------------------------------

const finiteDouble = fc.double({ noNaN: true, noDefaultInfinity: true })

/** A finite double in every printed form, and integers past 2^53, and decimals of any length and exponent. */
const numberText = fc.oneof(
  fc.tuple(finiteDouble, fc.nat()).map(([v, i]) => { const forms = numberTexts(v); return forms[i % forms.length] }),
  fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }).map(String),
  fc.tuple(fc.constantFrom('', '-'), fc.stringMatching(/^[1-9][0-9]{0,39}$/), fc.nat({ max: 40 }), fc.integer({ min: -400, max: 400 }))
    .map(([sign, digits, point, exp]) => {
      const at = Math.min(point, digits.length - 1)
      const body = at === 0 ? digits : `${digits.slice(0, digits.length - at)}.${digits.slice(digits.length - at)}`
      return `${sign}${body}e${exp}`
    }),
  // decimals without an exponent, as most tensors are written: any digits either side of the dot
  fc.tuple(fc.constantFrom('', '-'), fc.stringMatching(/^(0|[1-9][0-9]{0,24})$/), fc.stringMatching(/^[0-9]{1,30}$/))
    .map(([sign, int, frac]) => `${sign}${int}.${frac}`),
  // rounding ties and their neighbours: the exact midpoint, and truncations of it
  fc.tuple(fc.double({ min: 0, noNaN: true, noDefaultInfinity: true, minExcluded: true, max: 1e308 }), fc.integer({ min: 15, max: 40 }), fc.constantFrom(-1, 0, 1))
    .map(([v, keep, nudge]) => {
      const [digits, exp] = midpointText(v).split('e')
      if (digits.length <= keep) return midpointText(v)
      const kept = BigInt(digits.slice(0, keep)) + BigInt(nudge)
      return `${kept}e${Number(exp ?? 0) + digits.length - keep}`
    })
)

t.test('every number is bit-identical to JSON.parse, in plain values and in tensors', async t => {
  fc.assert(fc.property(fc.array(numberText, { minLength: 1, maxLength: 20 }), texts => {
    const plain = readBody(Buffer.from(`{"x":[${texts.join(',')}]}`), NONE).x as number[]
    const tensor = readBody(Buffer.from(`{"input":[${texts.join(',')}]}`), new Set(['input'])).input as DecodedTensor
    texts.forEach((text, i) => {
      const want = JSON.parse(text) as number
      if (!Object.is(plain[i], want)) throw new Error(`${text}: plain ${plain[i]} vs ${want}`)
      if (!Object.is(tensor.data[i], want)) throw new Error(`${text}: tensor ${String(tensor.data[i])} vs ${want}`)
    })
  }), { seed: SEED, numRuns: 20 * RUNS })
})

t.test('numbers next to the limits of doubles', async t => {
  const texts = ['0', '-0', '-0.0', '-0e10', '0e-999', '1e400', '-1e400', '1e-400', '5e-324', '2.4703282292062328e-324', '2.4703282292062327e-324',
    '2.2250738585072011e-308', '2.2250738585072012e-308', '1.7976931348623157e308', '1.7976931348623158e308', '1.7976931348623159e308',
    '9007199254740993', '9007199254740992.5', '9007199254740993.0000000000000001', '18446744073709551615', '123456789012345678901234567890',
    '0.1000000000000000055511151231257827021181583404541015625', '7.038531e-26', '1e23', '8.41e21', '1e22', '1e-22', '4.35844e-320', '1e99999999999']
  // and, without exponents, next to the limits of exact reading: 2^53 digits, 22 after the dot
  texts.push('9007199254740991', '9007199254740991.5', '900719925474099.1', '900719925474099.12', '1234567890123456.7', '0.5', '-0.5', '1.0',
    '0.0000000000000000000001', '0.00000000000000000000001', '-0.0000000000000000000000000000000000000000000000000001', '12345678901234567890.5',
    '0.1234567890123456789012', '0.12345678901234567890123', '4.2', '-123.00000000000000000000000000000000001')
  for (const text of texts) {
    const want = JSON.parse(text) as number
    t.ok(Object.is((readBody(Buffer.from(`{"x":${text}}`), NONE).x), want), text)
    // in a tensor's row, between neighbours
    const row = readBody(Buffer.from(`{"input":[[1.5,${text},-2],[0,${text},3]]}`), new Set(['input'])).input as DecodedTensor
    t.ok(Object.is(row.data[1], want) && Object.is(row.data[4], want) && row.data[2] === -2, `${text} in a row`)
  }
})

// ---- plain JSON -------------------------------------------------------------------------------

/** Any character, lone surrogates and control characters included. */
const anyChar = fc.oneof(fc.integer({ min: 0, max: 0xffff }).map(c => String.fromCharCode(c)), fc.constantFrom('"', '\\', '/', '\n', 'é', '😀', '\u2028'))
const anyString = fc.array(anyChar, { maxLength: 12 }).map(cs => cs.join(''))
const safeKey = anyString.filter(k => k !== '__proto__' && k !== 'constructor' && k !== 'prototype')
const plainValue = fc.letrec(tie => ({
  value: fc.oneof({ depthSize: 'small' }, finiteDouble, anyString, fc.boolean(), fc.constant(null), tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 5 }),
  object: fc.dictionary(safeKey, tie('value'), { maxKeys: 5 })
})).value

t.test('plain values are what JSON.parse gives, whatever the spelling', async t => {
  fc.assert(fc.property(fc.dictionary(safeKey, plainValue, { maxKeys: 6 }), fc.integer(), (body, seed) => {
    const text = looseJson(body, seed)
    const bytes = Buffer.from(text)
    const d = difference(readBody(bytes, NONE), JSON.parse(bytes.toString()))
    if (d !== undefined) throw new Error(`${d} in ${text}`)
  }), { seed: SEED, numRuns: 5 * RUNS })
})

t.test('duplicate keys: the last wins, at the top and inside', async t => {
  const text = looseJson(new Entries([['a', 1], ['b', new Entries([['c', 1], ['c', [2]]])], ['a', 'x']]), 3)
  t.strictSame(readBody(Buffer.from(text), NONE), { a: 'x', b: { c: [2] } })
  t.strictSame(readBody(Buffer.from(text), NONE), JSON.parse(text))
})

// ---- errors of syntax, depth and keys ---------------------------------------------------------

function rejects (t: Test, text: string, code: string, message: RegExp, keys: ReadonlySet<string> = NONE): void {
  const got = outcome(text, keys)
  t.equal(got.code, code, `${code} for ${JSON.stringify(text.slice(0, 80))}`)
  t.match(got.message ?? '', message)
}

t.test('syntax errors are INVALID_JSON naming the byte position', async t => {
  rejects(t, '{"a": 1,}', 'INVALID_JSON', /^body: Unexpected token } at position 8$/)
  rejects(t, '{"input": [1, 2,]}', 'INVALID_JSON', /^body: Unexpected token ] at position 16$/, new Set(['input']))
  rejects(t, '{"a": [1 2]}', 'INVALID_JSON', /Unexpected token 2 at position 9/)
  rejects(t, '{"a": 01}', 'INVALID_JSON', /Unexpected token 1 at position 7/)
  rejects(t, '{"a": 1.}', 'INVALID_JSON', /Unexpected token } at position 8/)
  rejects(t, '{"a": .5}', 'INVALID_JSON', /Unexpected token \. at position 6/)
  rejects(t, '{"a": +1}', 'INVALID_JSON', /Unexpected token \+ at position 6/)
  rejects(t, '{"a": 1e}', 'INVALID_JSON', /Unexpected token } at position 8/)
  rejects(t, '{"a": -}', 'INVALID_JSON', /Unexpected token } at position 7/)
  rejects(t, '{"a": tru}', 'INVALID_JSON', /Unexpected token } at position 9/)
  // bare non-finite numbers (Python's json writes them) are named, with what to write instead
  const nonFinite = ' is not JSON; write non-finite numbers as the strings "NaN", "Infinity" and "-Infinity"$'
  rejects(t, '{"a": NaN}', 'INVALID_JSON', new RegExp(`^body: NaN at position 6${nonFinite}`))
  rejects(t, '{"input": [1, -Infinity]}', 'INVALID_JSON', new RegExp(`^body: -Infinity at position 14${nonFinite}`), new Set(['input']))
  rejects(t, '{"input": [[1, 2], [Infinity, 3]]}', 'INVALID_JSON', new RegExp(`^body: Infinity at position 20${nonFinite}`), new Set(['input']))
  rejects(t, '{"a": Inf}', 'INVALID_JSON', /^body: Unexpected token I at position 6$/)
  rejects(t, '{"a": Na', 'INVALID_JSON', /^body: Unexpected token N at position 6$/)
  rejects(t, '{"a": "x\ny"}', 'INVALID_JSON', /Bad control character in string literal at position 8/)
  rejects(t, '{"a": "\\x"}', 'INVALID_JSON', /Bad escaped character in JSON at position 8/)
  rejects(t, '{"a": "\\u12g4"}', 'INVALID_JSON', /Bad Unicode escape in JSON at position 11/)
  rejects(t, '{"a": "abc', 'INVALID_JSON', /Unterminated string in JSON at position 10/)
  rejects(t, '{"a": 1', 'INVALID_JSON', /Unexpected end of JSON input at position 7/)
  rejects(t, '{"a": 1} {}', 'INVALID_JSON', /Unexpected non-whitespace character after JSON at position 9/)
  rejects(t, '\ufeff{}', 'INVALID_JSON', /Unexpected byte 0xef at position 0/)
  rejects(t, '', 'INVALID_JSON', /^body: empty; expected a JSON object$/)
  rejects(t, '  ', 'INVALID_JSON', /Unexpected end of JSON input at position 2/)
  rejects(t, '[1, 2]', 'INVALID_REQUEST', /^body: must be a JSON object$/)
  rejects(t, '"x"', 'INVALID_REQUEST', /^body: must be a JSON object$/)
  rejects(t, '[1, 2', 'INVALID_JSON', /Unexpected end of JSON input/)
})

t.test('whatever a mutated body is, readBody refuses it exactly when JSON.parse does', async t => {
  const keys = new Set(['input', 'target'])
  const base = fc.record({ input: fc.constantFrom([[1, 2], [3, 4]], { dtype: 'float32', shape: [2], data: [1, 'NaN'] }, ['-Infinity', 'Infinity'], 0.5), other: plainValue })
  fc.assert(fc.property(base, fc.integer(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), fc.nat(), (body, seed, edits, cut) => {
    const bytes = Buffer.from(looseJson(body, seed))
    for (const [at, byte] of edits) bytes[at % bytes.length] = byte
    const mutated = cut % 4 === 0 ? bytes.subarray(0, cut % bytes.length) : bytes
    let parsed: unknown
    try {
      parsed = JSON.parse(mutated.toString())
    } catch {
      try {
        readBody(mutated, keys)
      } catch (err) {
        if ((err as LosshubError).code === 'INVALID_JSON') return
        throw new Error(`${(err as LosshubError).code} for invalid JSON ${mutated.toString()}`)
      }
      throw new Error(`accepted invalid JSON ${mutated.toString()}`)
    }
    // valid JSON: refused only as a non-object or for a forbidden key; otherwise the same values
    let got: Record<string, unknown>
    try {
      got = readBody(mutated, keys)
    } catch (err) {
      const code = (err as LosshubError).code
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        if (code === 'INVALID_REQUEST') return
      }
      if (code === 'INVALID_REQUEST' && /: unknown field; __proto__, constructor and prototype are never/.test((err as Error).message)) return
      if (code === 'INVALID_TENSOR' || code === 'INVALID_DTYPE') {
        // the error decodeTensor gives for one of the tensors
        const p = parsed as Record<string, unknown>
        if ([...keys].some(k => p[k] !== undefined && reference(k, p[k]).message === (err as Error).message)) return
      }
      throw err
    }
    const plain = { ...got }
    for (const k of keys) if (plain[k] instanceof DecodedTensor) delete plain[k]
    const want = { ...(parsed as Record<string, unknown>) }
    for (const k of keys) {
      if (want[k] === undefined) continue
      const ref = reference(k, want[k])
      if (ref.tensor === undefined) throw new Error(`${k}: accepted, but decodeTensor says ${ref.message ?? ''}`)
      const d = tensorDifference(got[k], ref.tensor)
      if (d !== undefined) throw new Error(`${k}: ${d}`)
      delete want[k]
    }
    const d = difference(plain, want)
    if (d !== undefined) throw new Error(d)
  }), { seed: SEED, numRuns: 5 * RUNS })
})

t.test('a body cut short anywhere is INVALID_JSON, inside a non-finite string too', async t => {
  const keys = new Set(['input'])
  const texts = ['{"input": [1, "-Infinity", "NaN", "Infinity"]}', '{"input": {"dtype": "float32", "shape": [2], "data": ["Infinity", "-Infinity"]}}', '{"input": [["Infinity"]]}']
  for (const text of texts) {
    for (let n = 1; n < text.length; n++) {
      const cut = text.slice(0, n)
      const got = outcome(cut, keys)
      if (got.code !== 'INVALID_JSON') t.fail(`${cut}: ${String(got.code)} ${String(got.message)}`)
      const lists = readOutcome(Buffer.from(`{"inputs": [{"data": ${cut.slice(10)}`), new Set(['inputs']))
      if (!/^INVALID_JSON/.test(lists.error ?? '')) t.fail(`inputs ${cut}: ${String(lists.error)}`)
    }
  }
  t.pass('every prefix refused as a syntax error, in a tensor and in an inference request\'s data')
})

t.test('nesting deeper than MAX_JSON_DEPTH is refused, without recursion, anywhere', async t => {
  const deep = /^body: nested deeper than 32 levels of arrays and objects/
  t.equal(MAX_JSON_DEPTH, 32)
  const ok = '{"a":' + '['.repeat(MAX_JSON_DEPTH - 1) + ']'.repeat(MAX_JSON_DEPTH - 1) + '}'
  t.equal(outcome(ok).code, undefined)
  rejects(t, '{"a":' + '['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH) + '}', 'INVALID_JSON', deep)
  rejects(t, '{"a":' + '{"b":'.repeat(MAX_JSON_DEPTH) + '1' + '}'.repeat(MAX_JSON_DEPTH + 1), 'INVALID_JSON', deep)
  // far past any stack, under a plain key and under a tensor key, closed or not
  for (const key of ['a', 'input']) {
    rejects(t, `{"${key}":` + '['.repeat(1e6) + ']'.repeat(1e6) + '}', 'INVALID_JSON', deep, new Set(['input']))
    rejects(t, `{"${key}":` + '['.repeat(1e6), 'INVALID_JSON', deep, new Set(['input']))
    rejects(t, `{"${key}":{"dtype":"float32","shape":` + '['.repeat(1e5), 'INVALID_JSON', deep, new Set(['input']))
  }
})

t.test('the keys __proto__, constructor and prototype are refused wherever they are, as unknown fields named by their place', async t => {
  const keys = new Set(['input'])
  const maps = new Set(['tensors'])
  const reserved = (place: string): RegExp => new RegExp(`^${place.replace(/[.[\]]/g, '\\$&')}: unknown field; __proto__, constructor and prototype are never field or tensor names$`)
  const refusal = (read: () => unknown): { code?: string, message?: string } => {
    try {
      read()
      return {}
    } catch (err) {
      return { code: (err as LosshubError).code, message: (err as Error).message }
    }
  }
  for (const key of ['__proto__', 'constructor', 'prototype']) {
    const spelled = JSON.stringify(key)
    const escaped = '"\\u005f' + spelled.slice(2)
    rejects(t, `{${spelled}: 1}`, 'INVALID_REQUEST', reserved(key))
    rejects(t, `{"a": [{"b": {${key === '__proto__' ? escaped : spelled}: {}}}]}`, 'INVALID_REQUEST', reserved(`a[0].b.${key}`))
    rejects(t, `{"a": [1, [2, {"c": 3, ${spelled}: {"polluted": 1}}]]}`, 'INVALID_REQUEST', reserved(`a[1][1].${key}`))
    rejects(t, `{"input": {"dtype": "float32", "shape": [1], "data": [1], ${spelled}: 1}}`, 'INVALID_REQUEST', reserved(`input.${key}`), keys)
    rejects(t, `{"input": {${spelled}: {"dtype": "float32"}}}`, 'INVALID_REQUEST', reserved(`input.${key}`), keys)
    rejects(t, `{"input": {"dtype": {${spelled}: 1}, "shape": [1], "data": [1]}}`, 'INVALID_REQUEST', reserved(`input.dtype.${key}`), keys)
    t.match(refusal(() => readBody(Buffer.from(`{"tensors": {"a": [1], ${spelled}: [1, 2]}}`), NONE, maps)), { code: 'INVALID_REQUEST', message: reserved(`tensors.${key}`) }, 'a name in a tensor map')
    // an inference request's inputs, and a parameter holding JSON (named by its root)
    t.match(refusal(() => readJson(Buffer.from(`{"inputs": [{"name": "x", "data": [1]}, {${spelled}: 1}]}`), new Set(['inputs']))), { code: 'INVALID_REQUEST', message: reserved(`inputs[1].${key}`) })
    t.match(refusal(() => readJson(Buffer.from(`{"inputs": [{"parameters": {${spelled}: {}}}]}`), new Set(['inputs']))), { code: 'INVALID_REQUEST', message: reserved(`inputs[0].parameters.${key}`) })
    t.match(refusal(() => readJson(Buffer.from(`[{"args": {${spelled}: "x"}}]`), undefined, undefined, undefined, 'parameters.terms')), { code: 'INVALID_REQUEST', message: reserved(`parameters.terms[0].args.${key}`) })
    // once the body is known to be JSON, and before a tensor's error (the key's value dropped may leave a tensor short)
    rejects(t, `{${spelled}: 1, "a": }`, 'INVALID_JSON', /^body: Unexpected token } at position/)
    rejects(t, `{"input": [[1], [1, 2]], ${spelled}: 1}`, 'INVALID_REQUEST', reserved(key), keys)
    rejects(t, `{"a": {${spelled}: 1, "b": {"__proto__": 2}}, ${spelled}: 3}`, 'INVALID_REQUEST', reserved(`a.${key}`))
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'nothing reached a prototype')
  t.strictSame(readBody(Buffer.from('{"proto": 1, "constructors": 2}'), NONE), { proto: 1, constructors: 2 })
})

// ---- tensors ----------------------------------------------------------------------------------

const element = fc.oneof({ weight: 8, arbitrary: finiteDouble }, { weight: 1, arbitrary: fc.constantFrom('NaN', 'Infinity', '-Infinity') })
const shape = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 })

function nest (dims: readonly number[], leaf: () => unknown): unknown {
  if (dims.length === 0) return leaf()
  return Array.from({ length: dims[0] }, () => nest(dims.slice(1), leaf))
}

/** A valid tensor in one of the three forms, any dtype. */
const validTensor = fc.oneof(
  fc.tuple(shape, fc.array(element, { minLength: 256, maxLength: 256 })).map(([dims, pool]) => {
    let i = 0
    return nest(dims, () => pool[i++ % pool.length])
  }),
  fc.tuple(shape, fc.constantFrom('float32', 'float64', 'int32', 'int64'), fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { minLength: 256, maxLength: 256 }), fc.array(element, { minLength: 256, maxLength: 256 }), fc.array(fc.maxSafeInteger(), { minLength: 4, maxLength: 4 }))
    .map(([dims, dtype, ints, floats, safe]) => {
      const n = dims.reduce((a, b) => a * b, 1)
      const data = Array.from({ length: n }, (_, i) => dtype === 'int32' ? ints[i % 256] : dtype === 'int64' ? (i % 5 === 0 ? safe[i % 4] : ints[i % 256]) : floats[i % 256])
      return { dtype, shape: dims, data }
    }),
  fc.tuple(shape, fc.constantFrom(['float32', 4], ['float64', 8], ['int32', 4], ['int64', 8]), fc.uint8Array({ minLength: 2048, maxLength: 2048 }))
    .map(([dims, [dtype, size], pool]) => {
      const n = dims.reduce((a, b) => a * b, 1)
      return { dtype, shape: dims, data: Buffer.from(pool.subarray(0, n * (size as number))).toString('base64') }
    })
)

t.test('valid tensors in every form and dtype decode exactly as decodeTensor decodes them', async t => {
  const keys = new Set(['input', 'target'])
  fc.assert(fc.property(validTensor, validTensor, plainValue, fc.integer(), (input, target, other, seed) => {
    const text = looseJson({ other, input, target }, seed)
    const parsed = parseSent(text)
    const got = readBody(Buffer.from(text), keys)
    for (const k of keys) {
      const want = reference(k, parsed[k])
      if (want.tensor === undefined) throw new Error(`invalid: ${want.message ?? ''}`)
      const d = tensorDifference(got[k], want.tensor)
      if (d !== undefined) throw new Error(`${k}: ${d} in ${text.slice(0, 300)}`)
    }
    const d = difference(got.other, parsed.other)
    if (d !== undefined) throw new Error(d)
  }), { seed: SEED, numRuns: 5 * RUNS })
})

/** Ways to break a tensor (or not quite: an escaped "NaN" is still NaN). */
const BAD_ELEMENTS = [null, true, false, 'foo', 'nan', '-NaN', '+Infinity', 'NaN ', '', {}, { a: 1 }, [], [1], [[1]], new Raw('1e400'), new Raw('-0'), new Raw('"N\\u0061N"'), new Raw('"\\u0049nfinity"'), 2 ** 31, -(2 ** 31) - 1, 2 ** 53, 1.5, -0.5, 'NaN', 'Infinity', 1e21]
const BAD_DTYPES = ['float16', 'FLOAT32', '', 1, null, ['float32'], new Raw('"float\\u0033\\u0032"')]
const BAD_SHAPES = [[-1], [1.5], [2 ** 31], [2 ** 31 - 1, 2 ** 31 - 1], '2', [[2]], [], [1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1], null, [new Raw('1e0')], [new Raw('2.0')]]
const BAD_BASE64 = ['', 'AAAA', 'AAAAAAAA', 'AAAAAA==', 'AAA=AAAA', 'A$AA', 'AA AA', 'AA\nA', '-_-_', 'AAAAAAA', '====', 'AAAAAAAAAAA=', 'AAAAAAAAAA==', '!AAAAA=', 'AAAAAAA!', 'AAAAAAAAAA=!', 'AAAAAA=A', 'é', '\u0000AAA', new Raw('"\\u0041AAA"'), new Raw('"AAAA\\/"')]

type Mutation = (v: unknown, pick: (n: number) => number) => unknown

const MUTATIONS: Mutation[] = [
  // an element, a row or the whole replaced
  (v, pick) => replaceLeaf(v, pick, BAD_ELEMENTS[pick(BAD_ELEMENTS.length)]),
  (_, pick) => BAD_ELEMENTS[pick(BAD_ELEMENTS.length)],
  (v, pick) => Array.isArray(v) ? v.map((row, i) => i === pick(v.length) && Array.isArray(row) ? row.slice(1) : row) : v,
  (v, pick) => Array.isArray(v) ? v.map((row, i) => i === pick(v.length) && Array.isArray(row) ? [...row, row[0] ?? 1] : row) : v,
  (v, pick) => Array.isArray(v) && v.length > 0 ? [...v.slice(0, -1), pick(2) === 0 ? 7 : [v[v.length - 1]]] : [v],
  v => nest(Array.from({ length: MAX_RANK + 1 - 1 }, () => 1), () => v),
  // typed: each field broken, missing, doubled or joined by another
  (v, pick) => typed(v, o => ({ ...o, dtype: BAD_DTYPES[pick(BAD_DTYPES.length)] })),
  (v, pick) => typed(v, o => ({ ...o, shape: BAD_SHAPES[pick(BAD_SHAPES.length)] })),
  (v, pick) => typed(v, o => ({ ...o, data: pick(2) === 0 ? BAD_BASE64[pick(BAD_BASE64.length)] : BAD_ELEMENTS[pick(BAD_ELEMENTS.length)] })),
  (v, pick) => typed(v, o => ({ ...o, data: Array.isArray(o.data) ? replaceLeaf(o.data, pick, BAD_ELEMENTS[pick(BAD_ELEMENTS.length)]) : o.data })),
  (v, pick) => typed(v, o => { const c = { ...o }; delete c[['dtype', 'shape', 'data'][pick(3)] as keyof typeof c]; return c }),
  (v, pick) => typed(v, o => new Entries([...Object.entries(o), [['dtype', 'shape', 'data'][pick(3)], BAD_ELEMENTS[pick(BAD_ELEMENTS.length)]]])),
  (v, pick) => typed(v, o => new Entries([[['dtype', 'shape', 'data'][pick(3)], BAD_ELEMENTS[pick(BAD_ELEMENTS.length)]], ...Object.entries(o)])),
  (v, pick) => typed(v, o => new Entries([...Object.entries(o), ['extra', pick(2)]])),
  (v, pick) => typed(v, o => new Entries(Object.entries(o).sort(() => pick(3) - 1))),
  (v, pick) => typed(v, o => ({ ...o, dtype: ['float32', 'float64', 'int32', 'int64'][pick(4)] }))
]

function typed (v: unknown, f: (o: Record<string, unknown>) => unknown): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v
  return f(v as Record<string, unknown>)
}

function replaceLeaf (v: unknown, pick: (n: number) => number, bad: unknown): unknown {
  if (!Array.isArray(v) || v.length === 0) return bad
  const i = pick(v.length)
  return v.map((x, j) => j !== i ? x : Array.isArray(x) ? replaceLeaf(x, pick, bad) : bad)
}

t.test('malformed tensors give exactly decodeTensor\'s error codes and messages', async t => {
  const keys = new Set(['input'])
  let refused = 0
  const mutationIndexes = fc.array(fc.nat({ max: MUTATIONS.length - 1 }), { minLength: 1, maxLength: 3 })
  fc.assert(fc.property(validTensor, mutationIndexes, fc.array(fc.nat(), { minLength: 8, maxLength: 8 }), fc.integer(), (valid, which, choices, seed) => {
    let c = 0
    const pick = (n: number): number => choices[c++ % choices.length] % n
    let tensor: unknown = valid
    for (const m of which) tensor = MUTATIONS[m](tensor, pick)
    const text = looseJson(new Entries([['a', 1], ['input', tensor], ['b', [true]]]), seed)
    const want = reference('input', parseSent(text).input)
    const got = outcome(text, keys)
    if (want.tensor !== undefined) {
      const d = tensorDifference(got.value?.input, want.tensor)
      if (d !== undefined) throw new Error(`${d} (${got.code ?? ''} ${got.message ?? ''}) for ${text}`)
    } else {
      refused++
      if (got.code !== want.code || got.message !== want.message) throw new Error(`${got.code ?? 'accepted'}: ${got.message ?? ''}\n  vs ${want.code ?? ''}: ${want.message ?? ''}\n  for ${text}`)
    }
  }), { seed: SEED, numRuns: 10 * RUNS })
  t.ok(refused > RUNS, `${refused} malformed tensors refused`)
})

t.test('forms, dtypes and the 0-d case as decodeTensor gives them', async t => {
  const keys = new Set(['input', 'target', 'weight'])
  const body = readBody(Buffer.from('{"input": [[0.1, 2], ["NaN", "-Infinity"]], "target": {"dtype": "int64", "shape": [3], "data": [0, -1, 9007199254740991]}, "weight": "Infinity", "reduction": "sum"}'), keys)
  const input = body.input as DecodedTensor
  t.ok(input instanceof DecodedTensor)
  t.same([input.dtype, input.shape, input.form], [undefined, [2, 2], 'nested'])
  t.same(Array.from(input.data as Float64Array), [0.1, 2, NaN, -Infinity])
  const target = body.target as DecodedTensor
  t.same([target.dtype, target.form, Array.from(target.data as BigInt64Array)], ['int64', 'flat', [0n, -1n, 9007199254740991n]])
  const weight = body.weight as DecodedTensor
  t.same([weight.shape, weight.data[0]], [[], Infinity])
  t.equal(body.reduction, 'sum')
  t.notOk(body.reduction instanceof DecodedTensor)
  // a tensor key under a plain key is plain JSON
  t.strictSame(readBody(Buffer.from('{"x": {"input": [1]}}'), keys), { x: { input: [1] } })
})

t.test('base64 is decoded into aligned memory of exactly the tensor', async t => {
  const values = Float64Array.of(0.1, -0, NaN, 5e-324)
  const text = `{"pad": "x", "input": {"data": "${Buffer.from(values.buffer).toString('base64')}", "shape": [4], "dtype": "float64"}}`
  const input = readBody(Buffer.from(text), new Set(['input'])).input as DecodedTensor
  t.equal(input.form, 'base64')
  t.equal(input.data.byteOffset, 0)
  t.equal(input.data.buffer.byteLength, 32)
  t.ok(bytesOf(input.data).equals(Buffer.from(values.buffer)))
})

t.test('a tensor error waits for the rest of the body: a syntax error comes first, a later duplicate replaces it', async t => {
  const keys = new Set(['input'])
  rejects(t, '{"input": [[1, 2], [3]], "b": }', 'INVALID_JSON', /Unexpected token }/, keys)
  rejects(t, '{"input": [[1, 2], [3]], "b": 1}', 'INVALID_TENSOR', /^input\[1\]: ragged nested arrays: expected length 2 at depth 1, got 1$/, keys)
  t.same(Array.from((readBody(Buffer.from('{"input": [[1, 2], [3]], "input": [4]}'), keys).input as DecodedTensor).data as Float64Array), [4])
  rejects(t, '{"input": [4], "input": {"dtype": "float32"}}', 'INVALID_TENSOR', /^input\.shape: expected an array/, keys)
})

t.test('a tensor map: each entry decoded as a tensor argument is, its errors named map.entry', async t => {
  const maps = new Set(['tensors'])
  const read = (text: string): Record<string, unknown> => readBody(Buffer.from(text), NONE, maps)
  const body = read('{"tensors": {"a": [[1, 2], [3, 4]], "b": {"dtype": "int64", "shape": [2], "data": "AQAAAAAAAAACAAAAAAAAAA=="}, "c": 2.5}, "grad": true}')
  const { a, b, c } = body.tensors as Record<string, DecodedTensor>
  t.ok(a instanceof DecodedTensor && b instanceof DecodedTensor && c instanceof DecodedTensor, 'every entry is a decoded tensor')
  t.same([a.shape, [...a.data], a.form], [[2, 2], [1, 2, 3, 4], 'nested'])
  t.same([b.dtype, b.shape, [...b.data], b.form], ['int64', [2], [1n, 2n], 'base64'])
  t.same([c.shape, [...c.data]], [[], [2.5]])
  t.equal(body.grad, true, 'other fields are plain JSON')
  t.same(read('{"tensors": {}}').tensors, {}, 'an empty map stays empty (the schema refuses it)')
  t.same(read('{"tensors": 3}').tensors, 3, 'a map that is not an object is left to the schema')

  const err = (text: string): LosshubError => t.throws(() => read(text)) as unknown as LosshubError
  t.throws(() => read('{"tensors": {"a": [1, 2], "b": [[1], [2, 3]]}}'), { code: 'INVALID_TENSOR', message: /^tensors\.b\[1\]: ragged/ }, 'a ragged entry is named')
  t.throws(() => read('{"tensors": {"a": {"dtype": "float32", "shape": [3], "data": [1]}}}'), { code: 'INVALID_TENSOR', message: /^tensors\.a\.data: shape \[3\] needs 3 elements, got 1/ })
  t.same(read('{"tensors": {"a": [[1], [2, 3]], "a": [5]}}').tensors, { a: new DecodedTensor(undefined, [1], Float64Array.of(5), 'nested') }, 'a later duplicate entry replaces an earlier one and its error')
  t.throws(() => read('{"tensors": {"a": [1]}, "tensors": {"b": [[1], [2, 3]]}}'), { code: 'INVALID_TENSOR', message: /^tensors\.b\[1\]: ragged/ }, 'a later duplicate map brings its own errors')
  t.same(Object.keys(read('{"tensors": {"a": [[1], [2, 3]]}, "tensors": {"b": [1]}}').tensors as object), ['b'], 'and drops those of the map it replaces')
  t.throws(() => read('{"tensors": {"a": [1], "a": x}}'), { code: 'INVALID_JSON' }, 'a syntax error comes first')
  t.throws(() => read('{"tensors": {"__proto__": [1]}}'), { code: 'INVALID_REQUEST', message: /^tensors\.__proto__: unknown field/ }, 'prototype keys are refused in the map too')
  const deep = `{"tensors": {"a": ${'['.repeat(MAX_JSON_DEPTH)}1${']'.repeat(MAX_JSON_DEPTH)}}}`
  t.match(err(deep).code, /INVALID_(JSON|TENSOR)/, 'nesting past the bound is refused, not recursed into')
})

t.test('base64 past one decoding piece: exact bytes, and a bad character in a later piece refused as decodeTensor refuses it', async t => {
  const n = 20001 // 80004 bytes: 106672 characters, two pieces, padded
  const values = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1e3)
  const text = Buffer.from(values.buffer).toString('base64')
  const body = (data: string): string => `{"input": {"dtype": "float32", "shape": [${n}], "data": "${data}"}}`
  const got = readBody(Buffer.from(body(text)), new Set(['input'])).input as DecodedTensor
  t.same(Buffer.from(got.data.buffer), Buffer.from(values.buffer), 'bit for bit')
  for (const at of [70000, text.length - 3]) {
    const bad = text.slice(0, at) + '*' + text.slice(at + 1)
    const want = (() => { try { decodeTensor('input', JSON.parse(body(bad)).input); return 'decoded' } catch (err) { return (err as LosshubError).code + ': ' + (err as LosshubError).message } })()
    const seen = (() => { try { readBody(Buffer.from(body(bad)), new Set(['input'])); return 'decoded' } catch (err) { return (err as LosshubError).code + ': ' + (err as LosshubError).message } })()
    t.equal(seen, want, `a '*' at character ${at}`)
    t.match(seen, /^INVALID_TENSOR/)
  }
})

t.test('base64 with junk where its padding belongs, an inner \'=\' or whitespace is refused; the URL-safe alphabet reads as the standard one', async t => {
  const keys = new Set(['input'])
  const body = (dtype: string, data: string): string => `{"input": {"dtype": "${dtype}", "shape": [1], "data": "${data}"}}`
  // float32 1.0 is AACAPw== (4 bytes: two '='), float64 1.5 is AAAAAAAA+D8= (8 bytes: one '=')
  const refused: Array<[string, string]> = [
    ['float32', '!AACAPw='], ['float32', 'AACAPw=!'], ['float32', 'AACAPw!!'], ['float32', 'AACA Pw='], ['float32', ' AACAPw='], ['float32', 'AACAPw=\\n'],
    ['float32', 'AACAPwA='], ['float32', 'AACAPwAA'], ['float32', 'AACA=w=='], ['float32', 'A=CAPw=='], ['float32', 'AACAP==='],
    ['float64', 'AAAAAAAA+D8!'], ['float64', '\\tAAAAAAAA+D8'], ['float64', 'AAAAAAAA+D8A'], ['float64', 'AAAA=AAA+D8='], ['float64', 'AAAAAAAA+D=='], ['float64', 'AAAAAA AA+D8']
  ]
  for (const [dtype, data] of refused) {
    const text = body(dtype, data)
    const got = outcome(text, keys)
    t.equal(got.code, 'INVALID_TENSOR', `${data}: refused`)
    t.match(got.message ?? '', new RegExp(`^input\\.data: base64 must hold 1 ${dtype} elements \\(\\d bytes, \\d+ base64 characters\\) for shape \\[1\\], got invalid base64`), data)
    t.equal(got.message, reference('input', parseSent(text).input).message, `${data}: decodeTensor's message`)
  }
  const read = (dtype: string, data: string): number[] => Array.from((readBody(Buffer.from(body(dtype, data)), keys).input as DecodedTensor).data as Float64Array)
  t.same(read('float32', 'AACAPw=='), [1])
  t.same(read('float64', 'AAAAAAAA+D8='), [1.5])
  t.same(read('float64', 'AAAAAAAA-D8='), [1.5], '- for +')
  t.same(read('float32', '//9/fw=='), [3.4028234663852886e38])
  t.same(read('float32', '__9_fw=='), [3.4028234663852886e38], '_ for /')
})

t.test('base64 after its dtype and shape: the text ends where its length says, and escapes or quotes inside read as JSON.parse reads them', async t => {
  const keys = new Set(['input'])
  // float32 [1]: 8 characters; the quote at that length may close the text or sit inside it
  const texts = [
    'AACAPw==', // the plain case
    '\\/\\/9\\/fw==', // escaped '/': longer than 8 bytes, decoded by the slow path
    'AACAPw\\u003d=', // an escaped '='
    'AACA\\/w=', // 8 bytes with an escape: 7 characters
    'AAC\\"Pw=', // an escaped quote inside
    'AACAPw=\\"AA', // an escaped quote where the length points
    'AACAPw"' // too short: the quote before the length
  ]
  for (const data of texts) {
    for (const order of [['dtype', 'shape', 'data'], ['data', 'dtype', 'shape']]) {
      const fields: Record<string, string> = { dtype: '"dtype": "float32"', shape: '"shape": [1]', data: `"data": "${data}"` }
      const text = `{"input": {${order.map(k => fields[k]).join(', ')}}}`
      const got = outcome(text, keys)
      let parsed: Record<string, unknown>
      try { parsed = parseSent(text) } catch {
        t.equal(got.code, 'INVALID_JSON', `${text}: not JSON`)
        continue
      }
      const want = reference('input', parsed.input)
      if (want.tensor !== undefined) t.same(Array.from((got.value?.input as DecodedTensor).data as Float32Array), Array.from(want.tensor.data as Float32Array), `${text}: decoded`)
      else t.same([got.code, got.message], [want.code, want.message], `${text}: refused alike`)
    }
  }
})

t.test('tensors go into the memory the caller provides, when it provides some, with the same values', async t => {
  const f32 = Float32Array.of(1.5, -2.25, 3)
  const i64 = BigInt64Array.of(7n, -8n)
  const body = Buffer.from(JSON.stringify({
    a: { dtype: 'float32', shape: [3], data: Buffer.from(f32.buffer).toString('base64') },
    b: [[1, 2], [3, 4]],
    c: { dtype: 'float32', shape: [2], data: [0.5, 'NaN'] },
    d: { dtype: 'int32', shape: [2], data: [5, -6] },
    e: { dtype: 'int64', shape: [2], data: Buffer.from(i64.buffer).toString('base64') },
    f: { dtype: 'int64', shape: [1], data: [9] },
    g: [1, 2, 3]
  }))
  const keys = new Set(['a', 'b', 'c', 'd', 'e', 'f', 'g'])
  const given: Array<{ bytes: number, memory?: SharedArrayBuffer }> = []
  // memory twice the size asked for, as a pool may give; the last tensor (g) takes memory of its own
  const provided = readBody(body, keys, undefined, bytes => {
    const memory = given.length < 9 ? new SharedArrayBuffer(2 * bytes) : undefined
    given.push({ bytes, memory })
    return memory
  })
  const plain = readBody(body, keys)
  for (const k of keys) {
    const [p, q] = [provided[k] as DecodedTensor, plain[k] as DecodedTensor]
    t.same([p.dtype, p.shape, p.form], [q.dtype, q.shape, q.form], `${k}: dtype, shape and form`)
    t.same(Array.from(p.data as ArrayLike<number | bigint>), Array.from(q.data as ArrayLike<number | bigint>), `${k}: the same values`)
    t.equal(p.data.buffer instanceof SharedArrayBuffer, k !== 'g', `${k}: ${k === 'g' ? 'memory of its own' : 'in the memory provided'}`)
  }
  // c, d and f are read as numbers first (float64), then converted into memory of their dtype
  t.same(given.map(g => g.bytes), [12, 32, 16, 8, 16, 8, 16, 8, 8, 24])
})

// ---- lists of objects with numbers under `data` (readJson's dataLists) ----------------------------

/** What readJson gives for bytes, with or without dataLists: its value, or its error's code and message. */
function readOutcome (bytes: Buffer, lists?: ReadonlySet<string>): { value?: unknown, error?: string } {
  try {
    return { value: readJson(bytes, lists) }
  } catch (err) {
    if (!(err instanceof LosshubError)) throw err
    return { error: `${err.code}: ${err.message}` }
  }
}

/** `data` of any kind: regular nested numbers (flat ones among them), ragged, too deep, mixed with other values. */
const anyData = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.tuple(shape, fc.array(element, { minLength: 64, maxLength: 64 })).map(([dims, pool]) => {
      let i = 0
      return nest(dims.length === 0 ? [3] : dims, () => pool[i++ % pool.length])
    })
  },
  { weight: 1, arbitrary: fc.constantFrom([[1, 2], [3]], [[1], 2], [1, [2]], [[[[[[[[[1]]]]]]]]], [1, 'nan'], [1, null], [true], [[]], [], ['\u0049nfinity']) },
  { weight: 1, arbitrary: plainValue }
)

/** An Open Inference Protocol request: inputs (objects with data, and now and then something else) and other fields. */
const inferenceBody = fc.record({
  id: anyString,
  inputs: fc.array(fc.oneof(
    { weight: 6, arbitrary: fc.record({ name: anyString, shape: fc.array(fc.nat({ max: 9 })), data: anyData }) },
    { weight: 1, arbitrary: plainValue }
  ), { maxLength: 4 }),
  parameters: fc.dictionary(safeKey, plainValue, { maxKeys: 3 })
}, { requiredKeys: [] })

t.test('readJson with dataLists: data of nested numbers becomes their tensor; anything else, and every error, is readJson\'s own', async t => {
  const lists = new Set(['inputs'])
  let tensors = 0
  let plain = 0
  fc.assert(fc.property(inferenceBody, fc.integer(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }), (body, seed, edits) => {
    const bytes = Buffer.from(looseJson(body, seed))
    for (const [at, byte] of edits) bytes[at % bytes.length] = byte
    const got = readOutcome(bytes, lists)
    const want = readOutcome(bytes)
    if (want.error !== undefined || got.error !== undefined) {
      if (got.error !== want.error) throw new Error(`${String(got.error)} vs ${String(want.error)}`)
      return
    }
    // the same document, but for data read as numbers: the tensor decodeTensor makes of that data
    const value = got.value as { inputs?: unknown }
    const ref = want.value as { inputs?: unknown }
    if (Array.isArray(value.inputs) && Array.isArray(ref.inputs)) {
      value.inputs.forEach((input: unknown, i: number) => {
        const data = (input as Record<string, unknown> | null)?.data
        if (!(data instanceof DecodedTensor)) {
          plain++
          return
        }
        tensors++
        const reference = decodeTensor('data', (ref.inputs as Array<Record<string, unknown>>)[i].data)
        const d = tensorDifference(data, reference)
        if (d !== undefined) throw new Error(`inputs[${i}].data: ${d}`)
        ;(input as Record<string, unknown>).data = (ref.inputs as Array<Record<string, unknown>>)[i].data
      })
    }
    const d = difference(got.value, want.value)
    if (d !== undefined) throw new Error(d)
  }), { seed: SEED, numRuns: 2 * RUNS })
  t.ok(tensors > RUNS / 2, `data read as numbers (${tensors} times)`)
  t.ok(plain > RUNS / 4, `and data, or inputs, left as JSON (${plain} times)`)
})

t.test('readJson with dataLists reads only `data`, only in objects of the named top-level arrays', async t => {
  const lists = new Set(['inputs'])
  const text = '{"inputs": [{"data": [[1, 2], [3, 4]], "shape": [2, 2], "other": [5]}, 7, {"data": [1, [2]]}], "outputs": [{"data": [1]}], "data": [2]}'
  type Read = { inputs: [{ data: DecodedTensor, shape: unknown, other: unknown }, number, { data: unknown }], outputs: unknown, data: unknown }
  const value = readJson(Buffer.from(text), lists) as Read
  t.ok(value.inputs[0].data instanceof DecodedTensor, 'an input\'s data')
  t.same([value.inputs[0].data.shape, Array.from(value.inputs[0].data.data as Float64Array)], [[2, 2], [1, 2, 3, 4]])
  t.strictSame([value.inputs[0].shape, value.inputs[0].other, value.inputs[1], value.inputs[2].data], [[2, 2], [5], 7, [1, [2]]], 'other members, other elements, ragged data: plain JSON')
  t.strictSame([value.outputs, value.data], [[{ data: [1] }], [2]], 'data anywhere else: plain JSON')
  t.strictSame(readJson(Buffer.from('[{"inputs": [{"data": [1]}]}]'), lists), [{ inputs: [{ data: [1] }] }], 'a document that is not an object: plain JSON')
})
