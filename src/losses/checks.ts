import { fail } from '../errors'
import { type Arg } from './loss'
import { at, fmtShape, sameShape, shown } from '../tensor/tensor'
import { firstOutside } from '../tensor/scan'

/**
 * The checks a loss makes of its arguments' shapes and values in `check`, each throwing a
 * coded error that names the argument and the first element at fault.
 */

/** Requires `arg` to have exactly `shape`. */
export function expectShape (name: string, arg: Arg, shape: readonly number[], why = ''): void {
  if (!sameShape(arg.shape, shape)) fail('SHAPE_MISMATCH', `${name}: expected shape ${fmtShape(shape)}${why}, got ${fmtShape(arg.shape)}`)
}

/**
 * Requires every index of `arg` (other than `ignore`) to lie in [0, classes). int64 indices
 * are compared as BigInt, so a base64 2^53 + 1 is never rounded into range or onto `ignore`.
 */
export function expectIndicesInRange (name: string, arg: Arg, classes: number, ignore?: number): void {
  const i = firstOutside(arg.data, 0, classes - 1, ignore)
  if (i >= 0) outOfRange(name, String(arg.data[i]), i, classes, ignore)
}

function outOfRange (name: string, v: string, i: number, classes: number, ignore: number | undefined): never {
  return fail('INDEX_OUT_OF_RANGE', `${name}: class index ${v} at flat position ${i} is out of range [0, ${classes})${ignore !== undefined ? ` (ignore_index is ${ignore})` : ''}`)
}

/**
 * Requires each row of `arg` (its last axis, `classes` long) to list class indices in
 * [0, classes) up to its first -1, and every entry, those after it too (not read), to lie in
 * [-1, classes), as PyTorch checks.
 */
export function expectListedIndices (name: string, arg: Arg, classes: number): void {
  // every entry, also those after a row's first -1 (which are not read): PyTorch refuses any outside [-1, C)
  const i = firstOutside(arg.data, -1, classes - 1)
  if (i >= 0) fail('INDEX_OUT_OF_RANGE', `${name}: entry ${shown(arg.data, i)} at flat position ${i} is out of range [-1, ${classes}) (class indices, a row's list ended by -1)`)
}

/** Requires every element of `arg` to lie in [lo, hi]. */
export function expectInRange (name: string, arg: Arg, lo: number, hi: number): void {
  const i = firstOutside(arg.data, lo, hi)
  if (i >= 0) fail('DOMAIN_ERROR', `${name}: elements must lie in [${lo}, ${hi}], got ${shown(arg.data, i)} at flat position ${i}`)
}

/** Requires every element of `arg` other than `ignore` to lie in [0, 1]. */
export function expectUnit (name: string, arg: Arg, ignore: number | undefined): void {
  const i = firstOutside(arg.data, 0, 1, ignore)
  if (i >= 0) fail('DOMAIN_ERROR', `${name}: elements must lie in [0, 1]${ignore !== undefined ? ` (or be ignore_index ${ignore})` : ''}, got ${shown(arg.data, i)} at flat position ${i}`)
}

/** Requires every element of `arg` to be >= 0; `what` says what its elements are (e.g. "variances"). */
export function expectNonNegative (name: string, arg: Arg, what: string): void {
  for (let i = 0; i < arg.data.length; i++) {
    const v = at(arg.data, i)
    if (v < 0) fail('DOMAIN_ERROR', `${name}: ${what} must be non-negative, got ${shown(arg.data, i)} at flat position ${i}`)
  }
}

/** Requires every element of `arg` to be a label 0 or 1. */
export function expectBinaryLabels (name: string, arg: Arg): void {
  for (let i = 0; i < arg.data.length; i++) {
    const v = at(arg.data, i)
    if (v !== 0 && v !== 1) fail('DOMAIN_ERROR', `${name}: labels must be 0 or 1, got ${shown(arg.data, i)} at flat position ${i}`)
  }
}

/** Requires every element of `arg` other than `ignore` to be one of `allowed`. */
export function expectLabels (name: string, arg: Arg, allowed: readonly number[], ignore?: number): void {
  for (let i = 0; i < arg.data.length; i++) {
    const v = at(arg.data, i)
    if (v === ignore || allowed.includes(v)) continue
    fail('DOMAIN_ERROR', `${name}: elements must be ${allowed.join(' or ')}${ignore !== undefined ? ` (or ignore_index ${ignore})` : ''}, got ${shown(arg.data, i)} at flat position ${i}`)
  }
}

/** Requires every element of `arg` to be -1 or 1, as the loss's target convention. */
export function expectSigns (name: string, arg: Arg): void {
  for (let i = 0; i < arg.data.length; i++) {
    const v = at(arg.data, i)
    if (v !== 1 && v !== -1) fail('DOMAIN_ERROR', `${name}: elements must be 1 or -1, got ${shown(arg.data, i)} at flat position ${i}`)
  }
}

/**
 * Requires targets in {-1, 1}, or all in {0, 1} (the hinge family's two conventions): every
 * element is -1, 0 or 1, and -1 and 0 are never mixed.
 */
export function expectHingeTargets (name: string, arg: Arg): void {
  const t = arg.data
  let seen: number | undefined // the first -1 or 0: the two may not be mixed
  for (let i = 0; i < t.length; i++) {
    const v = at(t, i)
    if (v !== 1 && v !== -1 && v !== 0) fail('DOMAIN_ERROR', `${name}: expected values in {-1, 1} (or all in {0, 1}), got ${shown(arg.data, i)} at flat position ${i}`)
    if (v !== 1 && seen !== undefined && v !== at(t, seen)) {
      fail('DOMAIN_ERROR', `${name}: mixes -1 and 0 (at flat positions ${seen} and ${i}); use {-1, 1}, or {0, 1} throughout`)
    }
    if (v !== 1) seen ??= i
  }
}
