/**
 * What every answer must be: a 200 whose loss and gradients have the shapes the request asks
 * for, or a 4xx with the API's error body and a code of the error table. Never a 5xx.
 */
import { ERRORS } from '../../src/errors'
import { type LossDef } from '../../src/losses/loss'
import { fromForm } from '../helpers/tensors'
import { expectedLossShape, sentShape } from './loss-shapes'

/** What the contract requires of a request: a 200, a 4xx, or either (never a 5xx). */
export type Expect = 'ok' | 'reject' | 'either'

/** An answer as received: status and body (parsed when it is JSON, else the text). */
export interface Answer { status: number, body: unknown }

/**
 * The first way `answer` breaks the contract for `sent` (the body as the server parsed it), or
 * undefined. `finite`: every loss and gradient value must be finite.
 */
export function judge (def: LossDef, sent: unknown, expect: Expect, answer: Answer, finite: boolean): string | undefined {
  const { status, body } = answer
  if (status >= 500) return `status ${status} (${JSON.stringify(body).slice(0, 200)})`
  if (status !== 200) {
    const bad = errorBodyProblem(status, body)
    if (bad !== undefined) return bad
    if (status < 400 || status >= 500) return `status ${status}`
    if (expect === 'ok') return `expected 200, got ${status} ${JSON.stringify(body)}`
    return undefined
  }
  if (expect === 'reject') return `expected a 4xx, got 200 ${JSON.stringify(body).slice(0, 200)}`
  return resultProblem(def, sent as Record<string, unknown>, body, finite)
}

/** Why `body` is not the API's error body for `status`, or undefined. */
export function errorBodyProblem (status: number, body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return `status ${status} without a JSON error body: ${String(body).slice(0, 200)}`
  const e = body as Record<string, unknown>
  const keys = Object.keys(e).sort().join()
  if (keys !== 'code,error,message,statusCode') return `status ${status}: error body has keys ${keys}`
  if (e.statusCode !== status) return `status ${status}: body's statusCode is ${String(e.statusCode)}`
  const entry = (ERRORS as Record<string, { status: number }>)[String(e.code)]
  if (entry === undefined) return `status ${status}: code ${String(e.code)} is not in the error table`
  if (entry.status !== status) return `status ${status}: code ${String(e.code)} belongs to status ${entry.status}`
  if (typeof e.error !== 'string' || e.error === '') return `status ${status}: empty "error"`
  if (typeof e.message !== 'string' || e.message === '') return `status ${status}: empty "message"`
  return undefined
}

/** A shape as nested arrays can show it: nothing after the first 0 length. */
const visible = (shape: number[], nested: boolean): string => {
  const zero = shape.indexOf(0)
  return JSON.stringify(nested && zero >= 0 ? shape.slice(0, zero + 1) : shape)
}

function resultProblem (def: LossDef, sent: Record<string, unknown>, body: unknown, finite: boolean): string | undefined {
  if (typeof body !== 'object' || body === null) return `200 without a JSON object: ${String(body).slice(0, 200)}`
  const r = body as { loss?: unknown, grad?: Record<string, unknown> }
  const extra = Object.keys(r).filter(k => k !== 'loss' && k !== 'grad')
  if (extra.length > 0) return `200 with unexpected fields ${extra.join()}`
  const first = sent[def.args[0].name]
  const nested = typeof first !== 'object' || first === null || Array.isArray(first)
  const problem = tensorProblem('loss', r.loss, expectedLossShape(def.name, def.args.map(a => a.name), sent), nested, finite)
  if (problem !== undefined) return problem
  const wanted = sent.grad === true ? def.args.filter(a => a.grad === true && sent[a.name] !== undefined).map(a => a.name) : []
  const got = Object.keys(r.grad ?? {})
  if (sent.grad !== true && r.grad !== undefined) return 'grad returned without grad: true'
  if (got.sort().join() !== [...wanted].sort().join()) return `grad has ${got.join() || 'nothing'}, expected ${wanted.join()}`
  for (const name of wanted) {
    const p = tensorProblem(`grad.${name}`, r.grad?.[name], sentShape(sent[name]), nested, finite)
    if (p !== undefined) return p
  }
  return undefined
}

function tensorProblem (what: string, v: unknown, shape: number[], nested: boolean, finite: boolean): string | undefined {
  const isTyped = typeof v === 'object' && v !== null && !Array.isArray(v)
  if (isTyped === nested) return `${what}: answered ${isTyped ? 'typed' : 'nested'}, the request's first tensor is ${nested ? 'nested' : 'typed'}`
  const t = fromForm(v)
  if (visible(t.shape, nested) !== visible(shape, nested)) return `${what}: shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(shape)}`
  if (!nested && t.data.length !== shape.reduce((a, b) => a * b, 1)) return `${what}: ${t.data.length} elements for shape ${JSON.stringify(shape)}`
  if (finite) {
    const i = t.data.findIndex(x => !Number.isFinite(x))
    if (i >= 0) return `${what}: element ${i} is ${t.data[i]}, the example's answer is finite`
  }
  return undefined
}
